"""Runtime enforcement of weak supervision: refuse to open files under GT folders.

``install(forbidden)`` adds a Python audit hook (PEP 578) that raises
:class:`GroundTruthAccessError` whenever the process opens a path under one of the
``forbidden`` folders. Ray workers get the same hook through the job's runtime
environment: ``ray.init(runtime_env=guard.runtime_env(forbidden))`` makes each worker run
:func:`install_from_env` at start-up. Audit hooks cannot be removed; use this in
processes dedicated to labeling or training (jobs, tests).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["GroundTruthAccessError", "install", "install_from_env", "runtime_env", "ENV"]

ENV = "RAYSYS_FORBID_READ"
_installed: list[str] = []


class GroundTruthAccessError(PermissionError):
    """Weakly supervised code tried to read ground truth."""


def _norm(p: str) -> str:
    """A storage URI as it is (``s3://bucket/a``, no trailing ``/``), a local path made
    absolute."""
    return p.rstrip("/") if "://" in p else os.path.abspath(p)


def _hook(event: str, args) -> None:
    # "raysys.storage.open": a read of a storage URI (raysys.io.storage)
    if event not in ("open", "raysys.storage.open") or not _installed or not args:
        return
    p = args[0]
    if not isinstance(p, (str, bytes, os.PathLike)) or isinstance(p, int):
        return
    try:
        path = _norm(os.fsdecode(p))
    except (TypeError, ValueError):
        return
    for root in _installed:
        sep = "/" if "://" in root else os.sep
        if path == root or path.startswith(root + sep):
            raise GroundTruthAccessError(
                f"weak supervision: {path} is ground truth (under {root}) and must not be "
                "read by labeling or training")


def install(forbidden: list[str | os.PathLike]) -> None:
    """Forbid opening any file under these folders in this process (idempotent)."""
    new = [_norm(str(f) if "://" in str(f) else os.fspath(f)) for f in forbidden]
    if not _installed:
        sys.addaudithook(_hook)
    for f in new:
        if f not in _installed:
            _installed.append(f)


def install_from_env() -> None:
    """Worker set-up hook: read the forbidden folders from ``RAYSYS_FORBID_READ`` (and
    :func:`raysys.runtime.worker_setup`, the hook this one replaces)."""
    from raysys.runtime import worker_setup

    worker_setup()
    v = os.environ.get(ENV, "")
    if v:  # one folder a line (a storage URI has ':' in it, so no os.pathsep)
        install([p for p in v.split("\n") if p])


def runtime_env(forbidden: list[str | os.PathLike]) -> dict:
    """A Ray runtime_env that installs the guard in every worker of the job."""
    return {"worker_process_setup_hook": "raysys.guard.install_from_env",
            "env_vars": {ENV: "\n".join(
                _norm(str(f)) if "://" in str(f) else str(Path(f).resolve()) for f in forbidden)}}
