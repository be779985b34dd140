"""What a training run folder records of its inputs, checked before a run resumes from it.

``<run>/train_config.json`` is written before the first epoch::

    {"config": TrainConfig, "supervision": "weak" | "full",       # settings
     "inputs": {"labels": {file: sha256} | None,                   # the pseudo labels read
                "dataset": {scene: digest}},                       # frames (and GT if full)
     "sources": {"labels": path, "data": path, ...}}               # where, for the reader

A re-run whose settings or inputs differ is refused while the folder holds a checkpoint or
a final model (a resumed run would continue the old weights on other data, then calibrate
and report them as new); a record that guards nothing (a run that failed before its
first checkpoint) is replaced. Workers, CPUs and GPUs are resource settings: not recorded,
never blocking a resume.
"""

from __future__ import annotations

import json
from pathlib import Path

from raysys.config import to_dict
from raysys.io import storage
from raysys.io.fingerprint import (
    check_record,
    dataset_fingerprint,
    differences,
    jsonable,
    write_record,
)
from raysys.labeling.record import labels_digest
from raysys.training.config import TrainConfig

__all__ = ["RECORD", "train_record", "check_run_folder", "done_slot"]

RECORD = "train_config.json"
SETTINGS = ("config", "supervision")


def train_record(cfg: TrainConfig, source) -> dict:
    """This run's record: its settings and its inputs' fingerprints (``source``: a
    :class:`raysys.training.sources.ClipSource`)."""
    labels = getattr(source, "labels", None)
    lay = source.layout
    full = source.supervision == "full"
    return jsonable({
        "config": to_dict(cfg), "supervision": source.supervision,
        "inputs": {"labels": labels_digest(labels) if labels is not None else None,
                   "dataset": dataset_fingerprint(lay, ground_truth=full)},
        "sources": {"labels": str(storage.path(labels).resolve()) if labels is not None else None,
                    "data": str(lay.root.resolve()), "domain": lay.domain,
                    "split": lay.split}})


def _has_work(out: Path) -> bool:
    return any(p.is_dir() for p in (out / "ray_train").glob("checkpoint_*")) or any(
        (out / "final").glob("*"))


def check_run_folder(out: str | Path, want: dict, *, write: bool) -> None:
    """Refuse ``out`` when it holds a run of other settings or other inputs; with
    ``write``, record ``want`` there (the folder is created).

    Raises:
        ValueError: names what changed (settings; which label files; the dataset's scenes)
            and how to start fresh.
    """
    out = storage.path(out)
    work = _has_work(out)
    have = check_record(out / RECORD, want, SETTINGS, has_work=work, what="a training run",
                        upgrade=_upgrade)
    if have is not None and work:
        diff = differences(have.get("inputs"), want["inputs"])
        if diff:
            was = (have.get("sources") or {}).get("labels") or (have.get("sources") or {}).get(
                "data") or "not recorded"
            changed = sorted({d.split(":")[0].split(".")[0] for d in diff})
            what = {"labels": "other labels", "dataset": "another dataset (or frames that "
                    "changed since)", "value": "inputs an older raysys did not record"}
            raise ValueError(
                f"{out} holds a training run on {' and '.join(what.get(c, c) for c in changed)}"
                f" (it was trained from {was}; {diff[0]}): resuming would go on from its "
                f"weights; delete {out} or pass a new --out to start fresh")
    if write:
        write_record(out / RECORD, want)


def done_slot(out: str | Path, cfg: TrainConfig) -> int:
    """The schedule slot (:func:`raysys.training.labels.stage_slots`) of the newest epoch
    checkpoint under ``out`` (read from its ``checkpoint.json`` only), the epoch a re-run
    resumes after; 0 when there is none or it cannot be read. Ray Train restores the
    newest checkpoint too; should it ever restore an older one, the worker finds its
    epoch's clips missing from the stream and says so (:mod:`raysys.training.trainer`)."""
    from raysys.training.labels import stage_slots
    from raysys.viewsam.checkpoint_format import META_FILE

    metas = sorted((storage.path(out) / "ray_train").glob(f"checkpoint_*/{META_FILE}"))
    if not metas:
        return 0
    try:
        meta = json.loads(metas[-1].read_text())
        return stage_slots(cfg)[int(meta["stage"])] + int(meta["stage_epoch"])
    except (ValueError, KeyError, IndexError, TypeError, OSError):
        return 0


def _upgrade(have: dict) -> dict:
    """A record of an older raysys held the worker count, a resource setting now."""
    return {k: v for k, v in have.items() if k != "workers"}
