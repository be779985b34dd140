"""A small name -> factory registry for model backends.

Each role (ReID, text encoder, describer, ...) keeps one :class:`Registry`; entrypoints
turn a CLI/YAML name into an object with ``REGISTRY.build(name, **kwargs)``. A miss lists
the valid names, so a typo in a config says how to fix itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Registry", "UnknownBackendError"]

T = TypeVar("T")


class UnknownBackendError(KeyError, ValueError):
    """An unknown backend name; catchable as ``KeyError`` or ``ValueError``."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Maps backend names to factories (classes or functions returning a ``T``).

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"ReID backend"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(
        self, name: str, factory: Callable[..., T] | None = None
    ) -> Callable[..., T] | Callable[[Callable[..., T]], Callable[..., T]]:
        """Register ``factory`` under ``name``; without ``factory``, acts as a decorator."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def _add(f: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = f
            return f

        return _add if factory is None else _add(factory)

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered under ``name``.

        Raises:
            UnknownBackendError: (a ``KeyError`` and ``ValueError``) listing the valid names.
        """
        try:
            return self._factories[name]
        except KeyError:
            raise UnknownBackendError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def build(self, name: str, **kwargs) -> T:
        """Call the factory registered under ``name`` with ``kwargs``."""
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
