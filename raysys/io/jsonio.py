"""Standard JSON out: what every JSON file and ``--json`` output of raysys goes through.

JSON has no NaN or infinity (Python's ``json`` writes ``NaN`` and ``Infinity``, which
other readers reject). Settings are checked to be finite where they are read (the config
reader, the options); a metric that has no value (a mean over nothing, the unclipped MOTA
of an empty GT) is written as ``null``, and the text is made with ``allow_nan=False`` so
nothing non-standard can slip through.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["json_text", "write_json_file"]


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def json_text(obj: Any, indent: int | None = 1, default=str, **kw) -> str:
    """``obj`` as standard JSON text (non-finite floats become ``null``), newline-ended."""
    return json.dumps(_finite(obj), indent=indent, default=default, allow_nan=False,
                      **kw) + "\n"


def write_json_file(path: str | os.PathLike, obj: Any, indent: int | None = 1,
                    **kw) -> Path:
    """Write ``obj`` as standard JSON to ``path`` atomically (mode 0666 & ~umask)."""
    from raysys.io.crtrack import atomic_write_text

    atomic_write_text(path, json_text(obj, indent=indent, **kw))
    from raysys.io.storage import path as location

    return location(path)
