"""What a Stage 1 output folder records of its inputs, and the checks made against it.

``<labels>/config.json`` is written before any work (:func:`prepare_out`)::

    {"label_config": LabelConfig without ``device``,   # settings: a change is refused
     "data": resolved dataset root, "domain": ..., "split": ...,
     "dataset": {scene: digest}}                        # raysys.io.fingerprint

A re-run with other settings is refused while the folder holds finished work; a record
that guards nothing finished (a run that failed early) is replaced. A scene whose
fingerprint changed (a dataset regenerated in place, a view folder restored) has its
finished work deleted and redone, and so have the merged outputs. The actor pool and the
models' device are resource settings: never recorded, never blocking.

Consumers check labels against the dataset they are given (:func:`check_labels_match`:
``raysys train``, ``raysys quality``) and fingerprint their content
(:func:`labels_digest`: ``raysys train``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from raysys.config import to_dict
from raysys.io import storage
from raysys.io.dataset import DatasetLayout
from raysys.io.fingerprint import (
    check_record,
    dataset_fingerprint,
    file_digest,
    jsonable,
    scene_changes,
    write_record,
)
from raysys.labeling.config import LabelConfig

__all__ = ["RECORD", "LABEL_FILES", "label_record", "plan_resume", "prepare_out",
           "labels_digest", "read_label_record", "check_labels_match"]

log = logging.getLogger(__name__)

RECORD = "config.json"
SETTINGS = ("label_config", "data", "domain", "split")
# what consumers read: the pseudo labels and the record naming their dataset
LABEL_FILES = ("expressions.parquet", "trajectories.parquet", "tracklets.parquet", RECORD)
# merged outputs, rewritten at the end of every run from the per-scene work
_MERGED = ("tracklets.parquet", "trajectories.parquet", "expressions.parquet",
           "summary.json", "quality.json", "stages", "crtrack")


def label_record(cfg: LabelConfig, layout: DatasetLayout) -> dict:
    """This run's record: settings (``device`` left out: a resource setting) and the
    dataset's fingerprint."""
    settings = to_dict(cfg)
    settings.pop("device", None)
    return jsonable({"label_config": settings, "data": str(layout.root.resolve()),
                     "domain": layout.domain, "split": layout.split,
                     "dataset": dataset_fingerprint(layout)})


def _upgrade(have: dict) -> dict:
    """A record of an older raysys: its ``device`` was a setting then."""
    if isinstance(have.get("label_config"), dict):
        have = {**have, "label_config": {k: v for k, v in have["label_config"].items()
                                         if k != "device"}}
    return have


def _has_work(out: Path) -> bool:
    return any((out / "units").glob("*.parquet")) or any((out / "scenes").glob("*/*")) or (
        out / "expressions.parquet").is_file()


def plan_resume(out: Path, record: dict) -> list[str] | None:
    """Check ``out`` against this run's record; writes nothing.

    Returns:
        the scenes whose finished work is stale (their fingerprint changed, or they are
        gone), or None when the folder holds no finished work (new, or only a failed
        run's record).

    Raises:
        ValueError: ``out`` holds labels made with other settings.
    """
    work = _has_work(out)
    have = check_record(out / RECORD, record, SETTINGS, has_work=work, what="labels",
                        upgrade=_upgrade)
    if have is None or not work:
        return None
    return scene_changes(have.get("dataset"), record["dataset"])


def _scene_files(out: Path, scene: str) -> list[Path]:
    return [*(out / "units").glob(f"{scene}__*.parquet"), out / "scenes" / scene]


def prepare_out(out: Path, record: dict) -> list[str]:
    """Make ``out`` ready for this run: check it (:func:`plan_resume`), delete the work of
    stale scenes and the merged outputs, write the record.

    Returns:
        the scenes whose work is redone because the dataset changed under them.
    """
    stale = plan_resume(out, record) or []
    if stale:
        log.warning("the dataset changed since %s was made (scenes %s): their labels are "
                    "made again", out, ", ".join(stale))
        for scene in stale:
            for p in _scene_files(out, scene):
                storage.rmtree(p)
        for name in _MERGED:
            p = out / name
            storage.rmtree(p)
    write_record(out / RECORD, record)
    return stale


def labels_digest(labels: str | Path) -> dict[str, str]:
    """SHA-256 of each file a consumer reads of a Stage 1 output (:data:`LABEL_FILES`)."""
    labels = storage.path(labels)
    return {n: file_digest(labels / n) if (labels / n).is_file() else None
            for n in LABEL_FILES}


def read_label_record(labels: str | Path) -> dict:
    """The ``config.json`` of a Stage 1 output (what it was made from).

    Raises:
        FileNotFoundError: ``labels`` is not a ``raysys label`` output.
        ValueError: the file is not a JSON object.
    """
    f = storage.path(labels) / RECORD
    try:
        meta = json.loads(f.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{labels} is not a `raysys label` output: {f} not found "
                                "(run `raysys label --data DATA --out LABELS` first)") from None
    except ValueError as e:
        raise ValueError(f"{f}: not valid JSON ({e}); make the labels again with "
                         "`raysys label`") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{f}: not a labels record (a JSON object); make the labels again "
                         "with `raysys label`")
    return meta


def check_labels_match(labels: str | Path, layout: DatasetLayout, flag: str = "--data") -> None:
    """Labels must come from this dataset split, as it is now.

    The labels' ``config.json`` names their dataset root, domain and split and holds the
    dataset's fingerprint then. Another domain or split is refused; another root is
    accepted only when its frames are the same (a copy); the same root whose frames
    changed since (a regenerated dataset) is refused: the labels are stale.

    Raises:
        ValueError: one line naming both sides and the fix.
    """
    labels = storage.path(labels)
    meta = read_label_record(labels)
    made = f"{meta.get('data')} ({meta.get('domain')}/{meta.get('split')})"
    if (meta.get("domain"), meta.get("split")) != (layout.domain, layout.split):
        raise ValueError(f"the labels {labels} were made from {made}, not from the "
                         f"{layout.domain}/{layout.split} split: pass --domain "
                         f"{meta.get('domain')} --split {meta.get('split')}")
    same_root = str(layout.root.resolve()) == meta.get("data")
    recorded = meta.get("dataset")
    if recorded is None:  # labels of an older raysys: only the path can be compared
        if not same_root:
            raise ValueError(f"{flag} {layout.root} is not the dataset the labels {labels} "
                             f"were made from ({made}): pass {flag} {meta.get('data')}")
        return
    changed = scene_changes(recorded, dataset_fingerprint(layout))
    if not changed:
        return
    if same_root:
        raise ValueError(f"the dataset {layout.root} changed since the labels {labels} were "
                         f"made (scenes {', '.join(changed)}): make them again with `raysys "
                         f"label --data {layout.root} --out {labels}` (it redoes those scenes)")
    raise ValueError(f"{flag} {layout.root} is not the dataset the labels {labels} were made "
                     f"from ({made}; scenes {', '.join(changed)} differ): pass {flag} "
                     f"{meta.get('data')}, or label this dataset")
