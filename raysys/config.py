"""Reading and writing configs: one generic reader for every frozen dataclass config.

Every setting of raysys lives in a frozen dataclass whose defaults run (``SynthConfig``,
``LabelConfig``, ``TrainConfig``, ``TrackConfig``, ``ReportConfig``, ...). This module is
the one way to read them from, and write them to, JSON and YAML:

* :func:`from_dict` builds a config from a (partial) dict: nested configs merge field by
  field into their defaults (or into ``base``), lists become tuples, strings become
  ``Path``, and every scalar is type-checked, so a bad value fails with its dotted field
  path, the expected type and the value got
  (``TrainConfig.stages[1].lr: expected float, got 'fast'``; a float must be finite); an
  unknown field lists the valid ones;
* :func:`to_dict` is the inverse (plain JSON-able data: tuples become lists, paths strings);
* :func:`load_config` / :func:`save_config` read and write ``.json``, ``.yaml`` or ``.yml``
  files, with errors that name the file.

Why a small reader of our own and not pydantic (which is installed): it adds no runtime
dependency of raysys, the configs stay plain frozen dataclasses (what the library passes
around and what Ray pickles to workers), and one reader serves every config, nested ones
included, with the type hints the dataclasses already carry.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any

__all__ = ["from_dict", "to_dict", "load_config", "save_config", "CONFIG_SUFFIXES"]

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
_UNIONS = (typing.Union, types.UnionType)


def to_dict(cfg) -> dict:
    """A dataclass config as plain JSON-able data (nested configs become dicts, tuples
    lists, paths strings); :func:`from_dict` reads it back equal."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"to_dict expects a dataclass instance, got {type(cfg).__name__}")
    return _plain(cfg)


def _plain(x: Any) -> Any:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


def from_dict(cls, data: dict, base=None, *, path: str | None = None):
    """Build dataclass ``cls`` from a (partial) dict, type-checked field by field.

    Args:
        cls: the config class.
        data: field values; a nested config may be given as a dict (merged field by field
            into the current value) or as an instance. Fields left out keep their value.
        base: instance whose values ``data`` overrides (default: the class defaults).
        path: the dotted name of this config in error messages (default: the class name).

    Raises:
        ValueError: an unknown field (the message lists the valid ones), a value of the
            wrong type (the message names the field path, the expected type and the value),
            a missing required field, or the config's own validation.
    """
    path = path or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of {cls.__name__} fields, "
                         f"got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = "" if path == cls.__name__ else f"{path}: "
        raise ValueError(f"{where}unknown {cls.__name__} fields {unknown}; valid: "
                         f"{', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kw = {}
    for name, value in data.items():
        current = getattr(base, name) if base is not None else _default(fields[name])
        kw[name] = _convert(hints[name], value, f"{path}.{name}", current)
    if base is None:
        missing = sorted(n for n, f in fields.items() if n not in kw and _required(f))
        if missing:
            raise ValueError(f"{path}: missing fields {missing}")
    try:
        return dataclasses.replace(base, **kw) if base is not None else cls(**kw)
    except (TypeError, ValueError) as e:  # the config's own checks (__post_init__)
        raise ValueError(f"{path}: {e}") from None


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        args = typing.get_args(tp)
        names = [_type_name(a) for a in args if a is not type(None)]
        return " | ".join(names) + (" | None" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    if origin is not None:
        return _type_name(origin)
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields"
    return {dict: "a mapping", list: "a list", Path: "a path"}.get(tp, getattr(
        tp, "__name__", str(tp)))


class _Mismatch(Exception):
    """A value does not fit a type (turned into a ValueError with the field path)."""


def _convert(tp, value: Any, path: str, current: Any = None) -> Any:
    try:
        return _fit(tp, value, path, current)
    except _Mismatch:
        what = _type_name(tp)
        if isinstance(value, float) and not math.isfinite(value):
            what = f"a finite {what}"
        raise ValueError(f"{path}: expected {what}, got {_show(value)}") from None


def _fit(tp, value: Any, path: str, current: Any) -> Any:
    """``value`` as type ``tp``; raises :class:`_Mismatch` (or ValueError from a nested
    config, which already names its path)."""
    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for a in (a for a in args if a is not type(None)):
            try:
                return _fit(a, value, path, current)
            except (_Mismatch, ValueError):
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch
    if origin is tuple:
        return _fit_tuple(tp, value, path)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        (arg,) = typing.get_args(tp) or (Any,)
        return [_convert(arg, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _Mismatch
        base = current if isinstance(current, tp) else None
        return from_dict(tp, value, base, path=path)
    return _fit_scalar(tp, value)


def _fit_tuple(tp, value: Any, path: str) -> tuple:
    if not isinstance(value, list | tuple):
        raise _Mismatch
    args = typing.get_args(tp)
    if not args:
        return tuple(value)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise _Mismatch
    pairs = enumerate(zip(args, value, strict=True))
    return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in pairs)


def _fit_scalar(tp, value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:  # finite only: JSON has no NaN or infinity
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
                value):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and issubclass(tp, Path):
        if isinstance(value, str | os.PathLike):
            return Path(value)
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value  # a type this reader does not know: passed through unchecked
    raise _Mismatch


# ----------------------------------------------------------------------------- files


def _suffix(path: Path) -> str:
    s = path.suffix.lower()
    if s not in CONFIG_SUFFIXES:
        raise ValueError(f"{path}: a config file is {', '.join(CONFIG_SUFFIXES)}; "
                         f"got {s or 'no suffix'}")
    return s


def load_config(cls, path: str | os.PathLike, base=None):
    """Read a config of class ``cls`` from a ``.json``, ``.yaml`` or ``.yml`` file.

    The file may hold only some fields: the rest keep ``base``'s values (default: the class
    defaults), nested configs merging field by field.

    Raises:
        ValueError: the file cannot be read or parsed, or a field is wrong; the message
            names the file (and the field).
    """
    p = Path(path)
    suffix = _suffix(p)
    try:
        text = p.read_text()
    except OSError as e:
        raise ValueError(f"cannot read {p}: {e.strerror or e}") from None
    try:
        if suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as e:  # json.JSONDecodeError
        raise ValueError(f"{p}: not valid JSON: {e}") from None
    except Exception as e:  # yaml.YAMLError
        raise ValueError(f"{p}: not valid YAML: {e}") from None
    if data is None:
        data = {}  # an empty YAML file: all defaults
    try:
        return from_dict(cls, data, base)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


def save_config(cfg, path: str | os.PathLike) -> Path:
    """Write ``cfg`` to a ``.json``, ``.yaml`` or ``.yml`` file (atomically); returns it."""
    p = Path(path)
    suffix = _suffix(p)
    data = to_dict(cfg)
    if suffix == ".json":
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, p)
    return p
