"""Stage 1 end to end: raw multi-view videos + category labels -> pseudo labels, on Ray.

1. Ray Data over (scene, view, category) units: concept tracking + ReID on an actor pool
   (:mod:`raysys.labeling.tracking_stage`).
2. One actor per scene: association + re-prompting (:mod:`raysys.labeling.scene_stage`).
3. Ray Data over (scene, stage): descriptions + text embeddings
   (:mod:`raysys.labeling.describe_stage`); grouping into expressions on the driver.
4. Outputs: ``tracklets.parquet``, ``trajectories.parquet``, ``expressions.parquet`` (the
   re-prompt stage, i.e. the pseudo labels), the same pseudo labels in the CRTrack layout
   under ``crtrack/``, and per stage ``stages/<stage>/expressions.parquet`` so that the
   stage-wise quality can be scored (:mod:`raysys.labeling.quality`).

Weak supervision: only the frames and each scene's category labels are read
(:meth:`DatasetLayout.weak_inputs`). Resumable: finished units, scenes and descriptions
are skipped on a re-run with the same config; the scenes whose frames changed since are
redone, other settings are refused (:mod:`raysys.labeling.record`); every file is written
atomically.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysys.config import to_dict
from raysys.io import crtrack, storage
from raysys.io.dataset import (
    DatasetLayout,
    require_out_outside_ground_truth,
    require_views,
)
from raysys.labeling.config import LabelConfig
from raysys.labeling.describe_stage import DescribeUDF, descriptions_path
from raysys.labeling.grouping import group_descriptions
from raysys.labeling.record import label_record, plan_resume, prepare_out
from raysys.labeling.scene_stage import STAGES, SceneLabeler, read_stage, stage_path
from raysys.labeling.tracking_stage import TrackEmbedUDF, plan_units, unit_path
from raysys.runtime import Resources

__all__ = ["LabelingResult", "run_labeling", "check_labeling_inputs", "Loaders",
           "group_and_write"]


@dataclass(frozen=True)
class Loaders:
    """Injectable model loaders (tests swap them); None = build from the config."""

    track_embed: object = None  # LabelConfig -> (tracker, reid)
    scene_tracker: object = None  # LabelConfig -> tracker
    describe: object = None  # LabelConfig -> (describer, text embedder)


@dataclass(frozen=True)
class LabelingResult:
    out: Path
    summary: dict


def check_labeling_inputs(layout: DatasetLayout, out: str | Path, cfg: LabelConfig, *,
                          allow_missing_views: bool = False) -> list[dict]:
    """Everything about a labeling run that can be wrong, checked before anything is
    written: ``out`` outside the dataset's GT, the split's units, no missing view (unless
    allowed), and ``out``'s record (:mod:`raysys.labeling.record`). Returns the units.

    Raises:
        ValueError, FileNotFoundError: one line naming what is wrong and the fix.
    """
    out = storage.path(out)
    _, units = _plan(layout, out, allow_missing_views)
    plan_resume(out, label_record(cfg, layout))
    return units


def _plan(layout: DatasetLayout, out: Path, allow_missing_views: bool):
    require_out_outside_ground_truth(out, layout)
    units = plan_units(layout)
    if not units:
        raise ValueError(f"no <Scene>_View<k> image folders under {layout.image_root}")
    missing = require_views(layout, allow_missing_views)
    return missing, units


def _ray_args(res: Resources) -> dict:
    # Ray Data's actor pools restart dead actors and retry their tasks by default
    # (max_restarts=-1, max_task_retries=-1): a killed worker's unit is simply redone.
    return {"num_cpus": res.label_actor_cpus, "num_gpus": 1.0 if res.use_gpu else None}


def _track_and_embed(units, cfg, out, loaders, res: Resources) -> list[dict]:
    todo = [u for u in units if not unit_path(out, u).exists()]
    return _map_on_actor_pool(todo, TrackEmbedUDF, cfg, out, loaders.track_embed, res)


def _map_on_actor_pool(rows: list[dict], udf, cfg: LabelConfig, out: Path, loader,
                       res: Resources):
    """One row per call of ``udf`` on an actor pool (models load once per actor)."""
    import ray

    if not rows:
        return []
    ds = ray.data.from_items(rows).map_batches(
        udf, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, min(res.label_actors, len(rows)))),
        fn_constructor_kwargs={"cfg_dict": to_dict(cfg), "out": str(out), "loader": loader},
        **{k: v for k, v in _ray_args(res).items() if v is not None})
    return ds.take_all()


def _scenes(units, layout, cfg, out, loaders, res: Resources) -> list[dict]:
    import ray
    from tqdm.auto import tqdm

    scenes: dict[str, list[dict]] = {}
    for u in units:
        scenes.setdefault(u["scene"], []).append(u)
    actor_cls = ray.remote(SceneLabeler)
    refs, stats = {}, []
    for scene, us in sorted(scenes.items()):
        if all(stage_path(out, scene, s).exists() for s in STAGES):
            continue
        view_dirs = {u["view"]: u["view_dir"] for u in us}
        actor = actor_cls.options(**_ray_args(res), max_restarts=1, max_task_retries=1).remote(
            scene, view_dirs, to_dict(cfg), str(out), loaders.scene_tracker)
        refs[actor.run.remote([str(unit_path(out, u)) for u in us])] = actor
    pending = list(refs)
    with tqdm(total=len(pending), desc="associate + re-prompt (scenes)") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            stats.append(ray.get(done[0]))
            ray.kill(refs[done[0]])
            bar.update(1)
    return stats


def _describe(units, cfg, out, loaders, res: Resources) -> list[dict]:
    view_dirs: dict[str, dict[str, str]] = {}
    for u in units:
        view_dirs.setdefault(u["scene"], {})[u["view"]] = u["view_dir"]
    rows = [{"scene": s, "stage": st, "stage_file": str(stage_path(out, s, st)),
             "view_dirs": json.dumps(v)}
            for s, v in sorted(view_dirs.items()) for st in STAGES
            if not descriptions_path(out, s, st).exists()]
    return _map_on_actor_pool(rows, DescribeUDF, cfg, out, loaders.describe, res)


def group_and_write(scenes: list[str], views: dict[str, list[str]], cfg: LabelConfig,
                    out: Path) -> dict:
    """Group each stage's descriptions into expressions and write the pseudo labels (the
    re-prompt stage) of ``out``: the last step of Stage 1, after the describe step."""
    from raysys.io.tables import (
        expressions_to_table,
        read_table,
        tracklets_to_table,
        trajectories_to_table,
        write_table,
    )
    from raysys.types import CrossViewTrajectory

    counts = {}
    for stage in STAGES:
        exprs = []
        for scene in scenes:
            d = read_table(descriptions_path(out, scene, stage)).to_pydict()
            emb = np.array(d["embedding"], np.float32).reshape(len(d["text"]), -1)
            general = d.get("general") if cfg.grouping.general else None
            exprs += group_descriptions(scene, d["global_id"], d["text"], emb,
                                        cfg.grouping.similarity, general)
        write_table(expressions_to_table(exprs), out / "stages" / stage / "expressions.parquet")
        counts[stage] = len(exprs)
    # the pseudo labels: the re-prompt stage
    all_t, trajs = [], []
    exprs_final = []
    crt = out / "crtrack"
    for scene in scenes:
        rows = read_stage(stage_path(out, scene, "reprompt"))
        all_t += [t for _, t in rows]
        by_gid: dict[int, dict[str, list]] = {}
        for g, t in rows:
            by_gid.setdefault(g, {}).setdefault(t.view, []).append(t)
        trajs += [CrossViewTrajectory(scene, g, v[next(iter(v))][0].category, v)
                  for g, v in sorted(by_gid.items())]
    for e in _read_exprs(out / "stages" / "reprompt" / "expressions.parquet"):
        exprs_final.append(e)
        rows = read_stage(stage_path(out, e.scene, "reprompt"))
        per_view = {v: [] for v in views[e.scene]}
        for g, t in rows:
            if g in e.global_ids:
                per_view[t.view] += [[f, g, *b] for f, b in zip(t.frames, t.boxes, strict=True)]
        crtrack.write_expression_gt(crt, e.folder_name,
                                    {v: np.array(r).reshape(-1, 6) for v, r in per_view.items()})
    write_table(tracklets_to_table(all_t), out / "tracklets.parquet")
    write_table(trajectories_to_table(trajs), out / "trajectories.parquet")
    write_table(expressions_to_table(exprs_final), out / "expressions.parquet")
    return {"expressions_per_stage": counts, "trajectories": len(trajs),
            "expressions": len(exprs_final)}


def _read_exprs(path: Path):
    from raysys.io.tables import read_table, table_to_expressions

    return table_to_expressions(read_table(path))


def run_labeling(layout: DatasetLayout, out: str | Path, cfg: LabelConfig | None = None,
                 loaders: Loaders | None = None, progress: bool = True,
                 resources: Resources | None = None, *,
                 allow_missing_views: bool = False) -> LabelingResult:
    """Make pseudo labels for one (domain, split) of a dataset. Ray must be initialised.

    Args:
        layout: where the frames and category labels are (nothing else is read).
        out: output folder (created; a re-run resumes, and redoes the scenes whose frames
            changed since: :mod:`raysys.labeling.record`).
        cfg: Stage 1 settings.
        loaders: model loaders to inject (tests); default builds from ``cfg``.
        resources: the Stage 1 actor pool (``label_actors`` x ``label_actor_cpus``, a GPU
            each with ``use_gpu``); never changes the labels.
    """
    cfg = cfg or LabelConfig()
    res = resources or Resources()
    loaders = loaders or Loaders()
    out = storage.path(out)
    missing, units = _plan(layout, out, allow_missing_views)  # checks; nothing written yet
    redone = prepare_out(out, label_record(cfg, layout))
    views: dict[str, list[str]] = {}
    for u in units:
        views.setdefault(u["scene"], [])
        if u["view"] not in views[u["scene"]]:
            views[u["scene"]].append(u["view"])
    times = {}
    t = time.perf_counter()
    unit_stats = _track_and_embed(units, cfg, out, loaders, res)
    times["track_embed_s"] = time.perf_counter() - t
    t = time.perf_counter()
    scene_stats = _scenes(units, layout, cfg, out, loaders, res)
    times["associate_reprompt_s"] = time.perf_counter() - t
    t = time.perf_counter()
    _describe(units, cfg, out, loaders, res)
    times["describe_s"] = time.perf_counter() - t
    t = time.perf_counter()
    written = group_and_write(sorted(views), views, cfg, out)
    times["group_write_s"] = time.perf_counter() - t
    n_frames = sum(len(crtrack.list_frames(u["view_dir"])) for u in units
                   if u["category"] == units[0]["category"])
    summary = {
        "scenes": len(views), "units": len(units), "units_processed": len(unit_stats),
        "frames": n_frames, "redone_scenes": redone, "missing_views": missing,
        "tracklets": sum(s["tracklets"] for s in scene_stats) if scene_stats else None,
        **written, "timings": times,
        "fps": {k.replace("_s", ""): (n_frames / v if v > 0 else None)
                for k, v in times.items()},
    }
    crtrack.atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return LabelingResult(out, summary)
