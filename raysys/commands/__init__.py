"""Sub-commands of the ``raysys`` CLI (see raysys.cli)."""

from __future__ import annotations

import json
from pathlib import Path


def read_json_option(path: str | Path | None, flag: str) -> dict:
    """The JSON object in the file an option names (``{}`` without one); a clear error for
    a missing or malformed file."""
    if path is None:
        return {}
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {flag} {path}: {e}") from None
    if not isinstance(d, dict):
        raise ValueError(f"{flag} {path} must hold a JSON object, got {type(d).__name__}")
    return d
