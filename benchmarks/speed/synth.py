"""Benchmark of ``raysys synth``: render speed on one core and how hard the data is.

Prints JSON with
* ``render``: seconds to render and write one In-domain scene (3 views x 100 frames,
  640x360 by default) on one core, and ms per frame (all views);
* ``difficulty``: per domain of a generated test split - fraction of person boxes hidden
  below the visibility threshold / partially occluded / absent from another view, mean
  ids per expression, and the cross-view rank-1 of a colour-stripe histogram descriptor
  on GT crops (mean over ordered view pairs and scenes), with a same-view sanity check.

Usage: ``python benchmarks/speed/synth.py [--frames 100] [--stat-scenes 4]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

from raysys.synth import SynthConfig, generate, plan_scenes, render_scene  # noqa: E402
from raysys.synth.stats import difficulty_stats  # noqa: E402


def _serial(fn, items):
    return [fn(x) for x in items]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100, help="frames of the timed scene")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--views", type=int, default=3)
    p.add_argument("--stat-scenes", type=int, default=4, help="test scenes per domain")
    p.add_argument("--stat-frames", type=int, default=60, help="frames per stats scene")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    cv2.setNumThreads(1)
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SynthConfig(seed=args.seed, scenes=1, views=args.views, frames=args.frames,
                          width=args.width, height=args.height, splits=("test",),
                          domains=("In-domain",))
        spec = plan_scenes(cfg)[0]
        t0 = time.perf_counter()
        summary = render_scene(spec, Path(tmp) / "timed")
        dt = time.perf_counter() - t0
        out["render"] = {"views": args.views, "frames": args.frames,
                         "size": f"{args.width}x{args.height}", "threads": 1,
                         "seconds": round(dt, 2), "ms_per_frame": round(1000 * dt / args.frames,
                                                                         1),
                         "ms_per_view_frame": round(1000 * dt / args.frames / args.views, 1),
                         "person_boxes": summary["person_boxes"]}
        scfg = SynthConfig(seed=args.seed, scenes=args.stat_scenes, frames=args.stat_frames,
                           width=args.width, height=args.height, splits=("test",))
        t0 = time.perf_counter()
        generate(scfg, Path(tmp) / "stats", map_fn=_serial)
        out["stats_generation_seconds"] = round(time.perf_counter() - t0, 1)
        out["difficulty"] = {d: {k: round(v, 4) if isinstance(v, float) else v
                                 for k, v in difficulty_stats(Path(tmp) / "stats", d).items()}
                             for d in scfg.domains}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
