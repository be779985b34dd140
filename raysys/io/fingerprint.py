"""Fingerprints of a step's inputs, and the one record each output folder keeps of them.

A resumable step (``raysys label``, ``train``, ``track``) writes one JSON record into its
output folder before any work: its settings and the fingerprints of its inputs. A re-run
compares the record with what it is given now (:func:`check_record`):

* the settings changed (a config field, the dataset's path, the model): the folder is
  refused with one line naming what changed and how to start fresh, as long as it holds
  finished work; a record guarding no finished work (a run that failed before its first
  result) never blocks the next run;
* an input's content changed under the same path (a dataset regenerated in place): the
  step redoes the affected work, or refuses where redoing would throw away something
  costly (a training run);
* resource settings (actors, workers, CPUs, GPUs) are never recorded: they change where
  and how fast the work runs, not what it makes.

Fingerprints are cheap: a dataset's is its frame index (file names, sizes and
modification times per view, :func:`dataset_fingerprint`), never a hash of every frame;
files a step reads whole (labels, a model) are hashed (:func:`files_digest`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["check_record", "dataset_fingerprint", "differences", "file_digest",
           "files_digest", "jsonable", "scene_changes", "write_record"]

_IMG_EXT = {".jpg", ".jpeg", ".png"}
_CHUNK = 1 << 20


def jsonable(obj: Any) -> Any:
    """``obj`` as read back from a JSON file (tuples become lists, paths strings)."""
    return json.loads(json.dumps(obj, default=str))


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    from raysys.io import storage

    if storage.is_uri(path):
        return hashlib.sha256(storage.path(path).read_bytes()).hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def files_digest(files: Iterable[str | os.PathLike], root: str | os.PathLike) -> str:
    """SHA-256 over several files: each one's path relative to ``root`` and its bytes, in
    sorted order (the same files copied elsewhere give the same digest)."""
    h = hashlib.sha256()
    for f in sorted(Path(f) for f in files):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(file_digest(f).encode())
    return h.hexdigest()


def _frame_index(view_dir: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime in ns) of a view folder's images, sorted by name."""
    from raysys.io.storage import RemotePath

    if isinstance(view_dir, RemotePath):
        return sorted((i.base_name, i.size, i.mtime_ns) for i in view_dir.listing()
                      if os.path.splitext(i.base_name)[1].lower() in _IMG_EXT and i.is_file)
    out = []
    with os.scandir(view_dir) as entries:
        for e in entries:
            if os.path.splitext(e.name)[1].lower() in _IMG_EXT and e.is_file():
                st = e.stat()
                out.append((e.name, st.st_size, st.st_mtime_ns))
    return sorted(out)


def _tree_index(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime in ns) of every file under ``root``."""
    from raysys.io.storage import RemotePath

    if not root.is_dir():
        return []
    if isinstance(root, RemotePath):
        n = len(root.key.split("/"))
        return sorted(("/".join(i.path.split("/")[n:]), i.size, i.mtime_ns)
                      for i in root.listing(recursive=True) if i.is_file)
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            st = p.stat()
            out.append((p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return sorted(out)


def dataset_fingerprint(layout, *, ground_truth: bool = False) -> dict[str, str]:
    """Per scene of a split, a digest of what a step reads of it.

    Args:
        layout: a :class:`raysys.io.dataset.DatasetLayout`.
        ground_truth: also the scene's GT (its expression folders and ``meta/``): what a
            fully supervised run reads. Only names, sizes and mtimes are read, never a file.

    Returns:
        ``{scene: sha256}`` over the scene's frame index (every view folder's image names,
        sizes and modification times) and the bytes of its category labels file. A frame
        rewritten in place (a regenerated dataset) changes its mtime, so its scene's digest.
    """
    from raysys.io.frames import list_image_views

    scenes: dict[str, Any] = {}
    for scene, views in list_image_views(layout.image_root).items():
        cats = layout.categories_file(scene)
        scenes[scene] = {"views": {v: _frame_index(layout.view_dir(scene, v)) for v in views},
                         "categories": file_digest(cats) if cats.is_file() else None}
    if ground_truth:
        for scene, entry in scenes.items():
            gt = [(p.name, _tree_index(p)) for p in sorted(layout.gt_root.glob(f"{scene}_*"))]
            entry["gt"] = gt
            entry["meta"] = _tree_index(layout.meta_dir(scene))
    return {s: hashlib.sha256(json.dumps(e, sort_keys=True).encode()).hexdigest()
            for s, e in scenes.items()}


def scene_changes(recorded: dict[str, str] | None, current: dict[str, str]) -> list[str]:
    """Scenes whose fingerprint differs, is new, or is gone (all of them when nothing was
    recorded), sorted."""
    if recorded is None:
        return sorted(current)
    return sorted(s for s in set(recorded) | set(current) if recorded.get(s) != current.get(s))


def _show(x: Any) -> str:
    s = json.dumps(x, default=str)
    return s if len(s) <= 40 else s[:37] + "..."


def differences(have: Any, want: Any, prefix: str = "") -> list[str]:
    """What differs between two JSON values, one ``field: was X, now Y`` per leaf (dotted
    paths; dicts compared key by key, everything else as a whole)."""
    if isinstance(have, dict) and isinstance(want, dict):
        out = []
        for k in sorted(set(have) | set(want), key=str):
            name = f"{prefix}.{k}" if prefix else str(k)
            if k not in have:
                out.append(f"{name}: not recorded, now {_show(want[k])}")
            elif k not in want:
                out.append(f"{name}: was {_show(have[k])}, now not set")
            else:
                out += differences(have[k], want[k], name)
        return out
    return [] if have == want else [f"{prefix or 'value'}: was {_show(have)}, now {_show(want)}"]


def check_record(path: Path, want: dict, settings: Iterable[str], *, has_work: bool,
                 what: str, out_flag: str = "--out",
                 upgrade: Callable[[dict], dict] | None = None) -> dict | None:
    """Compare an output folder's record with the settings of this run (writes nothing).

    Args:
        path: the record (``<out>/<name>.json``).
        want: this run's record.
        settings: the keys of ``want`` that must be equal to resume; the others are
            fingerprints of inputs, for the caller to compare.
        has_work: whether the folder holds finished work. Without it, a record of other
            settings is what a failed run left: it does not block (the caller replaces it).
        what: what the folder holds, for the message ("labels", "predictions").
        upgrade: maps a record of an older raysys to this one's form (e.g. drops a
            field that is a resource setting now).

    Returns:
        the recorded dict, or None when there is none or it may be replaced.

    Raises:
        ValueError: other settings and finished work; names the first differences.
    """
    if not path.is_file():
        return None
    try:
        have = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable record of an earlier run ({e}); delete "
                         f"{path.parent} or pass a new {out_flag} to start fresh") from None
    if not isinstance(have, dict):
        have = {}
    if upgrade is not None:
        have = upgrade(have)
    diff = differences({k: have.get(k) for k in settings}, {k: want.get(k) for k in settings})
    if not diff:
        return have
    if not has_work:
        return None
    more = f" and {len(diff) - 2} more" if len(diff) > 2 else ""
    raise ValueError(f"{path.parent} holds {what} made with other settings ("
                     f"{'; '.join(diff[:2])}{more}; see {path}); delete {path.parent} or pass "
                     f"a new {out_flag} to start fresh")


def write_record(path: Path, record: dict) -> None:
    """Write a record atomically (the folder is created); unchanged bytes are not
    rewritten, so a resumed run leaves the record's file as it was."""
    from raysys.io.crtrack import atomic_write_text

    text = json.dumps(record, indent=2, sort_keys=False, default=str)
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
