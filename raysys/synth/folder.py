"""The output folder of ``raysys synth``: what it may already hold, and a full disk.

A dataset folder is new, empty, or a dataset of the same config (``dataset.json``), whose
finished scenes (``meta/<split>/<Scene>/done.json``) are kept and the rest rendered again.
Errors here are one line naming the folder or file (``ValueError`` subclasses).
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["DatasetConfigError", "DiskFullError", "check_root", "raise_if_disk_full",
           "read_json"]


class DatasetConfigError(ValueError):
    """The output folder holds something else than this config's dataset (or is a file,
    or its ``dataset.json`` cannot be read)."""


class DiskFullError(ValueError):
    """The disk filled up while writing (unfinished scenes are removed)."""


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None if it cannot be read or parsed."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_root(root: Path, config: dict, version: str) -> None:
    """Refuse an output folder that is a file, holds another dataset (``config`` is the
    new one's :func:`raysys.config.to_dict`), a corrupt ``dataset.json``, or other files.

    Raises:
        DatasetConfigError: naming the folder or file and what to do.
    """
    if root.exists() and not root.is_dir():
        raise DatasetConfigError(f"{root} is a file, not a folder: pass a new or empty "
                                 "folder (or a dataset of the same config) as the output")
    manifest = root / "dataset.json"
    if manifest.is_file():
        old = read_json(manifest)
        if not isinstance(old, dict) or not isinstance(old.get("config"), dict):
            raise DatasetConfigError(
                f"{manifest} is not a readable raysys dataset manifest (corrupt, or not a "
                "JSON object with a config); write to another folder, or delete that folder "
                "to start over")
        if old.get("version") != version or old["config"] != config:
            diff = sorted(k for k in set(config) | set(old["config"])
                          if config.get(k) != old["config"].get(k))
            raise DatasetConfigError(
                f"{root} holds a dataset made with another config (differs in: "
                f"{', '.join(diff) or 'version'}); write to another folder or delete it")
    elif root.exists() and any(root.iterdir()):
        raise DatasetConfigError(
            f"{root} is not empty and has no dataset.json; refusing to write a dataset into "
            "it (choose an empty or new folder)")


def raise_if_disk_full(e: BaseException, root: Path, scenes: list) -> None:
    """If ``e`` is a full disk (ENOSPC or EDQUOT, also as a Ray task's cause): remove what
    is unfinished and raise :class:`DiskFullError`; otherwise return.

    Args:
        scenes: ``(DatasetLayout, scene name)`` of every scene of the dataset; a scene
            without its ``done.json`` loses its frames, GT and meta, so nothing
            half-written is left looking complete (``dataset.json`` keeps
            ``"complete": false``; a re-run renders those scenes again).
    """
    cause = getattr(e, "cause", None) or e
    if getattr(cause, "errno", None) not in (errno.ENOSPC, errno.EDQUOT):
        return
    shutil.rmtree(root / ".tmp", ignore_errors=True)  # frames of unfinished scenes
    for lay, name in scenes:
        if (lay.meta_dir(name) / "done.json").is_file():
            continue
        for d in [*lay.image_root.glob(f"{name}_View*"), *lay.gt_root.glob(f"{name}_*"),
                  lay.meta_dir(name)]:
            shutil.rmtree(d, ignore_errors=True)
        lay.categories_file(name).unlink(missing_ok=True)
    raise DiskFullError(
        f"no space left on the device of {root} while writing the dataset; unfinished "
        "scenes were removed (finished ones are kept): free space or pass another --out, "
        "then run again to resume") from None
