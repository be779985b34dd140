"""The main job on the embedded default: generate a benchmark, look at it, score it.

Stages run on Ray (an embedded local Ray unless ``RAY_ADDRESS``/``address`` names a
cluster): scenes render as Ray tasks; visualisation and evaluation run on the driver.

What is evaluated at this stage of the project (Stage 1/2 land in later issues):
* ``gt_self``: each expression's GT written as predictions - a sanity check (100 / 100);
* ``category_oracle``: perfect tracking with *no language*: every object of the category
  predicted for every expression, with true global ids. Its CVR-IDF1 is what
  identity-perfect tracking scores without grounding the sentence; a referring tracker
  has to beat it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from raysys.io import crtrack
from raysys.io.dataset import DatasetLayout

__all__ = ["MainJobConfig", "run_main_job"]


@dataclass(frozen=True)
class MainJobConfig:
    """Settings of the main job; defaults are the embedded default (runs in ~1-2 min)."""

    out: Path = Path("runs/demo")  # everything goes under here
    seed: int = 0  # benchmark seed
    scenes: int = 2  # scenes per split
    views: int = 3  # cameras per In-domain scene
    frames: int = 60  # frames per video
    width: int = 640  # image size
    height: int = 360
    people: int = 8  # people per scene
    address: str | None = None  # Ray cluster; None = RAY_ADDRESS or a local Ray
    num_cpus: int | None = None  # CPUs of a local Ray (None = all)
    extra: dict = field(default_factory=dict)  # reserved for later stages


def _as_predictions(rows_by_view: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """GT rows (frame, id, left, top, w, h) -> prediction rows (frame, id, x1, y1, x2, y2)."""
    out = {}
    for view, r in rows_by_view.items():
        p = r.copy()
        p[:, 4:6] = r[:, 2:4] + r[:, 4:6]
        out[view] = p
    return out


def _category_oracle_predictions(layout: DatasetLayout, pred_root: Path) -> int:
    """Write every person track (true ids) as the prediction of every expression."""
    from raysys.io.gt import load_scene_tracks

    n = 0
    for expr in crtrack.list_expressions(layout.gt_root):
        tracks = load_scene_tracks(layout, expr.scene, category="person")
        crtrack.write_expression_pred(pred_root, expr.name, _as_predictions(tracks))
        n += 1
    return n


def _gt_as_predictions(layout: DatasetLayout, pred_root: Path) -> int:
    n = 0
    for expr in crtrack.list_expressions(layout.gt_root):
        gt = crtrack.read_expression_gt(layout.gt_root, expr.name)
        crtrack.write_expression_pred(pred_root, expr.name, _as_predictions(gt))
        n += 1
    return n


def _visualize(layout: DatasetLayout, out: Path, oracle_root: Path) -> dict:
    """Two mosaics of the first test scene: all GT objects, and one expression's
    category-oracle predictions against its GT (red FP = people the sentence excludes)."""
    from raysys.io.gt import load_scene_tracks
    from raysys.viz import write_scene_video

    scenes = crtrack.list_image_views(layout.image_root)
    scene = sorted(scenes)[0]
    paths = {v: {f: p for f, p in crtrack.list_frames(layout.view_dir(scene, v))}
             for v in scenes[scene]}
    frames = sorted(paths[scenes[scene][0]])[::2]
    res = {"all_objects": write_scene_video(
        paths, load_scene_tracks(layout, scene), out / f"{scene}_all_objects", frames=frames,
        title=f"{scene} - GT, all objects")}
    expr = next(e for e in crtrack.list_expressions(layout.gt_root) if e.scene == scene)
    pred, _ = crtrack.read_expression_pred(oracle_root, expr.name, scenes[scene])
    gt = crtrack.read_expression_gt(layout.gt_root, expr.name)
    res["expression"] = write_scene_video(
        paths, pred, out / f"{scene}_expression", frames=frames, box_format="xyxy",
        ref_rows_by_view=gt, title=f"{expr.text!r}: category oracle vs GT")
    res["expression"]["text"] = expr.text
    return res


def run_main_job(cfg: MainJobConfig) -> dict:
    """Run the job; returns (and writes to ``out/summary.json``) what it produced."""
    from raysys.eval import evaluate
    from raysys.runtime import init_ray, ray_map
    from raysys.synth import SynthConfig, generate

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    resources = init_ray(cfg.address, cfg.num_cpus)
    print(f"[raysys] Ray up: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")

    data = out / "data"
    synth_cfg = SynthConfig(
        seed=cfg.seed, scenes=cfg.scenes, views=cfg.views, frames=cfg.frames,
        width=cfg.width, height=cfg.height, people=cfg.people,
    )

    def map_fn(fn, items):
        return ray_map(fn, items, num_cpus=1, desc="render scenes")

    t = time.perf_counter()
    summary = generate(synth_cfg, data, map_fn=map_fn)
    timings["synth_s"] = time.perf_counter() - t

    results = {}
    t = time.perf_counter()
    for layout in DatasetLayout.available(data):
        if layout.split != "test":
            continue
        key = layout.domain
        preds = {
            "gt_self": (out / "predictions" / key / "gt_self", _gt_as_predictions),
            "category_oracle": (out / "predictions" / key / "category_oracle",
                                _category_oracle_predictions),
        }
        results[key] = {}
        for name, (pred_root, writer) in preds.items():
            writer(layout, pred_root)
            res = evaluate(layout.gt_root, pred_root)
            results[key][name] = res.to_json()
            print(f"\n[raysys] {key} test, predictions = {name}")
            print(res.format_table())
    timings["eval_s"] = time.perf_counter() - t

    t = time.perf_counter()
    test = DatasetLayout(data, "In-domain", "test")
    viz_out = out / "viz"
    videos = _visualize(test, viz_out, out / "predictions" / "In-domain" / "category_oracle")
    timings["viz_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    report = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "dataset": str(data),
        "synth": summary,
        "results": results,
        "viz": videos,
        "timings": timings,
    }
    crtrack.atomic_write_text(out / "summary.json", json.dumps(report, indent=2, default=_js))
    print(f"\n[raysys] dataset:      {data}")
    for name, v in videos.items():
        print(f"[raysys] pictures:     {name}: {v['gif']}  (+ {len(v['pngs'])} PNG frames)")
    print(f"[raysys] summary:      {out / 'summary.json'}")
    print(f"[raysys] took {timings['total_s']:.1f} s "
          f"(synth {timings['synth_s']:.1f} s, eval {timings['eval_s']:.1f} s, "
          f"viz {timings['viz_s']:.1f} s)")
    return report


def _js(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
