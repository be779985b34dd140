"""Offline tracking of a dataset split on a pool of Ray actors that each load the model
once; CRTrack predictions out. Each task is one pass over a scene's frames with a
:class:`~raysys.tracking.tracker.MultiExpressionTracker` of up to ``expressions_per_pass``
of its expressions (the frames decoded and the frozen trunk run once for them all; the
results equal one tracker per expression).

The queries are the split's expressions (the ``<Scene>_<expression>`` folder names of its
GT root: only the names, the sentence a user would type; no GT row is read). Frames stream
view-synchronised in frame order, exactly as a live source would feed the tracker.
Re-runs skip the expressions whose prediction files exist (resumable); files are written
atomically, so an interrupted pass leaves nothing half-written.

``<out>/track_config.json`` records, before any work, the model's content hash, the
tracking settings, the dataset split and its fingerprint (:mod:`raysys.io.fingerprint`).
Another model or other settings into a folder holding predictions are refused (the record
is never rewritten to name a model whose predictions are not those in the folder); a scene
whose frames changed since has its predictions deleted and made again. The actors, their
CPUs and GPUs are resource settings: not recorded, never blocking a resume.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from raysys.io import crtrack, storage
from raysys.io.dataset import (
    DatasetLayout,
    require_out_outside_ground_truth,
    require_views,
)
from raysys.io.fingerprint import (
    check_record,
    dataset_fingerprint,
    jsonable,
    scene_changes,
    write_record,
)
from raysys.io.views import view_ids
from raysys.tracking.config import TrackConfig

__all__ = ["TrackUnit", "ScenePass", "TrackRunResult", "plan_track_units", "plan_scene_passes",
           "track_unit", "track_scene", "track_split", "check_track_inputs", "model_digest",
           "RECORD"]

log = logging.getLogger(__name__)

RECORD = "track_config.json"
SETTINGS = ("track", "data", "domain", "split")  # and "model", checked first


@dataclass(frozen=True)
class TrackUnit:
    name: str  # expression folder name (<Scene>_<expression>)
    scene: str
    text: str
    views: tuple[str, ...]


@dataclass(frozen=True)
class ScenePass:
    """Expressions of one scene tracked together in one pass over its frames."""

    scene: str
    views: tuple[str, ...]
    units: tuple[TrackUnit, ...]


@dataclass
class TrackRunResult:
    pred_root: Path
    units: int  # (scene, expression) units in the split
    skipped: int  # already done before this run
    frames: int  # (expression, frame set) pairs tracked in this run
    seconds: float
    fps: float  # of those pairs per second (all views of one instant = one frame set)
    passes: int = 0  # passes over a scene's frames (each for up to track_expressions)
    redone_scenes: tuple[str, ...] = ()  # scenes whose frames changed since the last run


def plan_track_units(layout: DatasetLayout) -> list[TrackUnit]:
    views = crtrack.list_image_views(layout.image_root)
    out = []
    for e in crtrack.list_expressions(layout.gt_root):
        if e.scene not in views:
            raise FileNotFoundError(f"expression {e.name!r}: no frames of scene {e.scene!r} "
                                    f"under {layout.image_root}")
        out.append(TrackUnit(e.name, e.scene, e.text, tuple(views[e.scene])))
    return out


def plan_scene_passes(units: list[TrackUnit], per_pass: int) -> list[ScenePass]:
    """Group ``units`` by scene (in their order) into passes of at most ``per_pass``
    expressions."""
    if per_pass < 1:
        raise ValueError(f"expressions per pass must be >= 1, got {per_pass}")
    by_scene: dict[tuple[str, tuple[str, ...]], list[TrackUnit]] = {}
    for u in units:
        by_scene.setdefault((u.scene, u.views), []).append(u)
    return [ScenePass(scene, views, tuple(us[i:i + per_pass]))
            for (scene, views), us in by_scene.items() for i in range(0, len(us), per_pass)]


def _done(pred_root: Path, unit: TrackUnit) -> bool:
    return all((pred_root / unit.name / f"{v}.txt").is_file() for v in unit.views)


def track_scene(model, layout: DatasetLayout, scene: ScenePass, cfg: TrackConfig,
                proposals=None, on_proposals=None
                ) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """Track the expressions of one scene pass together; returns, per expression name,
    its prediction rows per view ``(frame, id, x1, y1, x2, y2)``, and the number of frame
    sets. ``proposals``: optional ``fn(frame_number, view_index)`` of the tracker's
    external proposals (the same for every expression), here called with the frame's
    number in the dataset (not its index in the stream); ``on_proposals``: the tracker's
    hook of that name, also called with the frame's number."""
    from PIL import Image

    from raysys.tracking.tracker import MultiExpressionTracker

    paths = {v: dict(crtrack.list_frames(layout.view_dir(scene.scene, v)))
             for v in scene.views}
    frames = sorted(set.intersection(*(set(p) for p in paths.values())))
    ext = None if proposals is None else (lambda g, k: proposals(frames[g], k))
    hook = None if on_proposals is None else (lambda g, *a: on_proposals(frames[g], *a))
    tracker = MultiExpressionTracker(model, [u.text for u in scene.units], len(scene.views),
                                     replace(cfg, keep_masks=False),
                                     view_ids=view_ids(scene.views), proposals=ext,
                                     on_proposals=hook)
    rows: list[dict[str, list]] = [{v: [] for v in scene.views} for _ in scene.units]

    def emit(results):
        for e, res in enumerate(results):
            for r in res:
                fno = frames[r.index]
                for v, objs in zip(scene.views, r.views, strict=True):
                    for o in objs:
                        x, y, w, h = o.box
                        rows[e][v].append((fno, o.global_id, x, y, x + w, y + h))

    for fno in frames:
        imgs = [np.asarray(Image.open(paths[v][fno]).convert("RGB")) for v in scene.views]
        emit(tracker.step(imgs))
    emit(tracker.flush())
    return {u.name: {v: np.asarray(r, dtype=np.float64).reshape(-1, 6) for v, r in
                     rows[e].items()} for e, u in enumerate(scene.units)}, len(frames)


def track_unit(model, layout: DatasetLayout, unit: TrackUnit, cfg: TrackConfig,
               proposals=None, on_proposals=None) -> tuple[dict[str, np.ndarray], int]:
    """Track one expression over its scene (:func:`track_scene` of that expression alone);
    returns prediction rows per view ``(frame, id, x1, y1, x2, y2)`` and the number of
    frame sets. ``proposals``, ``on_proposals``: as in :func:`track_scene`."""
    rows, n = track_scene(model, layout, ScenePass(unit.scene, unit.views, (unit,)), cfg,
                          proposals, on_proposals)
    return rows[unit.name], n


class _TrackWorker:
    """Ray actor: loads the checkpoint once, tracks units, writes their predictions."""

    def __init__(self, checkpoint: str, device: str, threads: int,
                 allow_partial: bool = False) -> None:
        import torch

        from raysys.viewsam.checkpoint import load_viewsam_checkpoint

        torch.set_num_threads(max(1, threads))
        self.model = load_viewsam_checkpoint(checkpoint, device=device,
                                             allow_partial=allow_partial).model

    def run(self, layout: DatasetLayout, scene: ScenePass, cfg: TrackConfig,
            pred_root: str) -> tuple[int, int]:
        """Track a scene pass and write its expressions' predictions; returns (frame sets,
        expressions)."""
        rows, n = track_scene(self.model, layout, scene, cfg)
        for u in scene.units:
            crtrack.write_expression_pred(pred_root, u.name, rows[u.name])
        return n, len(scene.units)


def model_digest(checkpoint: str | os.PathLike) -> str:
    """Content hash of a ViewSAM checkpoint, wherever its folder lies (its weights and
    metadata: :func:`raysys.viewsam.checkpoint.checkpoint_digest`). The one place tracking
    fingerprints a model.

    Raises:
        FileNotFoundError, UserError: ``checkpoint`` is not a ViewSAM checkpoint.
    """
    from raysys.viewsam.checkpoint import checkpoint_digest

    return checkpoint_digest(checkpoint)


def _record(checkpoint, layout: DatasetLayout, cfg: TrackConfig) -> dict:
    return jsonable({"checkpoint": str(storage.path(checkpoint).resolve()),
                     "model": model_digest(checkpoint),
                     "track": {k: v for k, v in asdict(cfg).items() if k != "batch_objects"},
                     "data": str(layout.root.resolve()), "domain": layout.domain,
                     "split": layout.split, "dataset": dataset_fingerprint(layout)})


def _has_work(pred_root: Path) -> bool:
    return any(pred_root.glob("*/View*.txt"))


def _stale(pred_root: Path, record: dict) -> list[str]:
    """Check ``pred_root``'s record against this run's (writes nothing); returns the scenes
    whose predictions are stale (their frames changed)."""
    f, work = pred_root / RECORD, _has_work(pred_root)
    if work and not f.is_file():
        raise ValueError(f"{pred_root} holds predictions but no {RECORD} naming the model "
                         f"that made them; delete {pred_root} or pass a new --out")
    have = check_record(f, record, ("model", *SETTINGS), has_work=False, what="")
    if have is None and work:  # a record of another run, and its predictions
        old = json.loads(f.read_text())
        old = old if isinstance(old, dict) else {}
        if old.get("model") != record["model"]:
            raise ValueError(
                f"{pred_root} holds predictions of another model ({old.get('checkpoint')}, "
                f"content {str(old.get('model'))[:12]}), not of {record['checkpoint']} "
                f"(content {record['model'][:12]}); delete {pred_root} or pass a new --out "
                "to start fresh")
    have = check_record(f, record, SETTINGS, has_work=work, what="predictions")
    if have is None or not work:
        return []
    return scene_changes(have.get("dataset"), record["dataset"])


def _plan(checkpoint, layout: DatasetLayout, pred_root: Path, cfg: TrackConfig,
          allow_missing_views: bool) -> tuple[list[TrackUnit], dict, list[str]]:
    require_out_outside_ground_truth(pred_root, layout)
    require_views(layout, allow_missing_views)
    units = plan_track_units(layout)
    record = _record(checkpoint, layout, cfg)  # fails, naming the path, on no checkpoint
    return units, record, _stale(pred_root, record)


def check_track_inputs(checkpoint: str | os.PathLike, layout: DatasetLayout,
                       pred_root: str | os.PathLike, cfg: TrackConfig | None = None, *,
                       allow_missing_views: bool = False) -> None:
    """Everything :func:`track_split` checks before it writes anything: ``pred_root``
    outside the dataset's GT, the scenes' views, the checkpoint's folder (its content
    hash), and ``pred_root``'s record of an earlier run (another model, other settings).

    Raises:
        ValueError, FileNotFoundError: one line naming what is wrong and the fix.
    """
    _plan(checkpoint, layout, storage.path(pred_root), cfg or TrackConfig(), allow_missing_views)


def _remove_scenes(pred_root: Path, scenes: list[str]) -> None:
    """Delete the prediction folders (``<Scene>_<expression>/View<k>.txt`` only) of
    ``scenes``."""
    for d in pred_root.iterdir():
        if d.is_dir() and d.name.split("_", 1)[0] in scenes and all(
                re.fullmatch(r"View\d+\.txt", f.name) for f in d.iterdir()):
            storage.rmtree(d)


def track_split(checkpoint: str | os.PathLike, layout: DatasetLayout,
                pred_root: str | os.PathLike, cfg: TrackConfig | None = None, *,
                actors: int = 2, actor_cpus: float = 1.0, use_gpu: bool = False,
                progress: bool = True, allow_missing_views: bool = False,
                allow_partial: bool = False, expressions_per_pass: int = 16,
                ) -> TrackRunResult:
    """Track every expression of a split with a ViewSAM checkpoint. Ray must be initialised.

    Args:
        checkpoint: a ``raysys train`` checkpoint folder (e.g. ``RUN/final``).
        layout: dataset split (frames + the expression names).
        pred_root: output folder of CRTrack predictions (``<name>/View<k>.txt``); a re-run
            resumes, refuses another model or other settings, and redoes the scenes whose
            frames changed.
        actors: tracking actors, each holding one model; actor_cpus: CPUs each (fractions
            allowed); use_gpu: one GPU per actor.
        allow_missing_views: track a scene whose view folder is missing with the views there
            are (otherwise an error naming the scene and the view).
        allow_partial: load a checkpoint whose weights do not all fit the model (the
            actors log what was skipped); by default that is an error.
        expressions_per_pass: expressions of a scene tracked together (one task); more
            share more work, fewer spread a scene over more actors and hold less memory.
    """
    import ray
    from ray.util import ActorPool
    from tqdm.auto import tqdm

    cfg = cfg or TrackConfig()
    pred_root = storage.path(pred_root)  # a local folder or a storage URI
    units, record, stale = _plan(checkpoint, layout, pred_root, cfg, allow_missing_views)
    if stale:
        log.warning("the frames of scenes %s changed since %s was made: their predictions "
                    "are made again", ", ".join(stale), pred_root)
        _remove_scenes(pred_root, stale)
    write_record(pred_root / RECORD, record)
    todo = [u for u in units if not _done(pred_root, u)]
    passes = plan_scene_passes(todo, expressions_per_pass)
    t0 = time.time()
    n = 0
    if passes:
        k = max(1, min(actors, len(passes)))
        # an actor that dies (its node gone, a crash) is restarted and its pass run again:
        # a pass writes each expression's files atomically, so a re-run is harmless
        remote = ray.remote(num_cpus=actor_cpus, num_gpus=1 if use_gpu else 0,
                            max_restarts=2, max_task_retries=2)(_TrackWorker)
        threads = max(1, int(round(actor_cpus)))
        pool = ActorPool([remote.remote(str(checkpoint), "cuda" if use_gpu else "cpu", threads,
                                        allow_partial) for _ in range(k)])
        it = pool.map_unordered(lambda a, p: a.run.remote(layout, p, cfg, str(pred_root)),
                                passes)
        with tqdm(total=len(todo), desc=f"track {layout.domain}", unit="expr",
                  disable=not progress) as bar:
            for frames, done in it:
                n += frames * done
                bar.update(done)
    dt = time.time() - t0
    return TrackRunResult(pred_root=pred_root, units=len(units), skipped=len(units) - len(todo),
                          frames=n, seconds=dt, fps=n / dt if dt > 0 and n else 0.0,
                          redone_scenes=tuple(stale), passes=len(passes))
