"""Offline tracking of a dataset split: one :class:`ViewSAMTracker` per (scene, expression),
run on a pool of Ray actors that each load the model once; CRTrack predictions out.

The queries are the split's expressions (the ``<Scene>_<expression>`` folder names of its
GT root: only the names, the sentence a user would type; no GT row is read). Frames stream
view-synchronised in frame order, exactly as a live source would feed the tracker.
Re-runs skip (scene, expression) units whose prediction files exist (resumable); files are
written atomically, so an interrupted unit leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from raysys.io import crtrack
from raysys.io.dataset import DatasetLayout
from raysys.tracking.config import TrackConfig

__all__ = ["TrackUnit", "TrackRunResult", "plan_track_units", "track_unit", "track_split"]


@dataclass(frozen=True)
class TrackUnit:
    name: str  # expression folder name (<Scene>_<expression>)
    scene: str
    text: str
    views: tuple[str, ...]


@dataclass
class TrackRunResult:
    pred_root: Path
    units: int  # (scene, expression) units in the split
    skipped: int  # already done before this run
    frames: int  # frame sets tracked in this run
    seconds: float
    fps: float  # frame sets per second (all views of one instant = one frame set)


def plan_track_units(layout: DatasetLayout) -> list[TrackUnit]:
    views = crtrack.list_image_views(layout.image_root)
    out = []
    for e in crtrack.list_expressions(layout.gt_root):
        if e.scene not in views:
            raise FileNotFoundError(f"expression {e.name!r}: no frames of scene {e.scene!r} "
                                    f"under {layout.image_root}")
        out.append(TrackUnit(e.name, e.scene, e.text, tuple(views[e.scene])))
    return out


def _done(pred_root: Path, unit: TrackUnit) -> bool:
    return all((pred_root / unit.name / f"{v}.txt").is_file() for v in unit.views)


def track_unit(model, layout: DatasetLayout, unit: TrackUnit, cfg: TrackConfig,
               proposals=None) -> tuple[dict[str, np.ndarray], int]:
    """Track one expression over its scene; returns prediction rows per view
    ``(frame, id, x1, y1, x2, y2)`` and the number of frame sets. ``proposals``: optional
    ``fn(frame_number, view_index)`` of :class:`ViewSAMTracker`'s external proposals, here
    called with the frame's number in the dataset (not its index in the stream)."""
    from PIL import Image

    from raysys.tracking.tracker import ViewSAMTracker

    paths = {v: dict(crtrack.list_frames(layout.view_dir(unit.scene, v))) for v in unit.views}
    frames = sorted(set.intersection(*(set(p) for p in paths.values())))
    ext = None if proposals is None else (lambda g, k: proposals(frames[g], k))
    tracker = ViewSAMTracker(model, unit.text, len(unit.views), replace(cfg, keep_masks=False),
                             proposals=ext)
    rows: dict[str, list] = {v: [] for v in unit.views}

    def emit(results):
        for r in results:
            fno = frames[r.index]
            for v, objs in zip(unit.views, r.views, strict=True):
                for o in objs:
                    x, y, w, h = o.box
                    rows[v].append((fno, o.global_id, x, y, x + w, y + h))

    for fno in frames:
        imgs = [np.asarray(Image.open(paths[v][fno]).convert("RGB")) for v in unit.views]
        emit(tracker.step(imgs))
    emit(tracker.flush())
    return {v: np.asarray(r, dtype=np.float64).reshape(-1, 6) for v, r in rows.items()}, \
        len(frames)


class _TrackWorker:
    """Ray actor: loads the checkpoint once, tracks units, writes their predictions."""

    def __init__(self, checkpoint: str, device: str, threads: int) -> None:
        import torch

        from raysys.viewsam.checkpoint import load_viewsam_checkpoint

        torch.set_num_threads(max(1, threads))
        self.model = load_viewsam_checkpoint(checkpoint, device=device).model

    def run(self, layout: DatasetLayout, unit: TrackUnit, cfg: TrackConfig,
            pred_root: str) -> int:
        rows, n = track_unit(self.model, layout, unit, cfg)
        crtrack.write_expression_pred(pred_root, unit.name, rows)
        return n


def track_split(checkpoint: str | os.PathLike, layout: DatasetLayout,
                pred_root: str | os.PathLike, cfg: TrackConfig | None = None, *,
                actors: int = 2, actor_cpus: float = 1.0, use_gpu: bool = False,
                progress: bool = True) -> TrackRunResult:
    """Track every expression of a split with a ViewSAM checkpoint. Ray must be initialised.

    Args:
        checkpoint: a ``raysys train`` checkpoint folder (e.g. ``RUN/final``).
        layout: dataset split (frames + the expression names).
        pred_root: output folder of CRTrack predictions (``<name>/View<k>.txt``).
        actors: tracking actors, each holding one model; actor_cpus: CPUs each (fractions
            allowed); use_gpu: one GPU per actor.
    """
    import ray
    from ray.util import ActorPool
    from tqdm.auto import tqdm

    from raysys.viewsam.checkpoint import read_checkpoint

    cfg = cfg or TrackConfig()
    read_checkpoint(checkpoint)  # fail early, with the path, if it is not a checkpoint
    pred_root = Path(pred_root)
    pred_root.mkdir(parents=True, exist_ok=True)
    units = plan_track_units(layout)
    todo = [u for u in units if not _done(pred_root, u)]
    (pred_root / "track_config.json").write_text(json.dumps(
        {"checkpoint": str(checkpoint), "track": asdict(cfg), "data": str(layout.root),
         "domain": layout.domain, "split": layout.split}, indent=2))
    t0 = time.time()
    n = 0
    if todo:
        k = max(1, min(actors, len(todo)))
        remote = ray.remote(num_cpus=actor_cpus, num_gpus=1 if use_gpu else 0)(_TrackWorker)
        threads = max(1, int(round(actor_cpus)))
        pool = ActorPool([remote.remote(str(checkpoint), "cuda" if use_gpu else "cpu", threads)
                          for _ in range(k)])
        it = pool.map_unordered(lambda a, u: a.run.remote(layout, u, cfg, str(pred_root)), todo)
        for frames in tqdm(it, total=len(todo), desc=f"track {layout.domain}",
                           disable=not progress):
            n += frames
    dt = time.time() - t0
    return TrackRunResult(pred_root=pred_root, units=len(units), skipped=len(units) - len(todo),
                          frames=n, seconds=dt, fps=n / dt if dt > 0 and n else 0.0)
