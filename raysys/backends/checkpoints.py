"""Checks for local model files, with errors that say how to get them.

No backend downloads weights: every real checkpoint comes from a path the user gives.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["require_file", "require_dir"]


def require_file(path: str | Path | None, what: str, how_to_get: str) -> Path:
    """Return ``path`` as a ``Path`` if it is an existing file.

    Args:
        path: the file the user gave (``None`` when they gave nothing).
        what: what the file is, e.g. ``"OSNet weights"``.
        how_to_get: how to obtain it and pass it, e.g. ``"download X ... and pass --flag PATH"``.

    Raises:
        FileNotFoundError: naming ``what``, the path and ``how_to_get``.
    """
    if path is None or str(path) == "":
        raise FileNotFoundError(f"{what}: no file given: {how_to_get}")
    p = Path(path).expanduser()
    if not p.is_file():
        state = "is a directory, expected a file" if p.is_dir() else "not found"
        raise FileNotFoundError(f"{what} {state} at {p}: {how_to_get}")
    return p


def require_dir(path: str | Path | None, what: str, how_to_get: str) -> Path:
    """Like :func:`require_file` for a model directory (e.g. a Hugging Face snapshot)."""
    if path is None or str(path) == "":
        raise FileNotFoundError(f"{what}: no directory given: {how_to_get}")
    p = Path(path).expanduser()
    if not p.is_dir():
        state = "is a file, expected a directory" if p.is_file() else "not found"
        raise FileNotFoundError(f"{what} {state} at {p}: {how_to_get}")
    return p
