"""Stage 1 throughput on the default backends: one tracking actor vs two.

Generates a test split (2 scenes x 3 views x 60 frames, 640x360 unless overridden), runs the
whole pipeline on a local Ray for each actor count in a fresh output folder, and prints JSON:
frames per second of the whole pipeline and the time of each stage.

    .venv/bin/python benchmarks/speed/label.py [--scenes 2 --frames 60 --actors 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=2)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from raysys.io.dataset import DatasetLayout
    from raysys.labeling.config import LabelConfig
    from raysys.labeling.pipeline import run_labeling
    from raysys.runtime import Resources
    from raysys.synth import SynthConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        generate(SynthConfig(seed=11, scenes=args.scenes, frames=args.frames,
                             splits=("test",), domains=("In-domain",)), root)
        layout = DatasetLayout(root, "In-domain", "test")
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        runs = []
        for n in args.actors:
            t0 = time.perf_counter()
            pool = Resources(label_actors=n, label_actor_cpus=min(1.0, args.cpus / (n + 1)))
            res = run_labeling(layout, Path(tmp) / f"labels-{n}", LabelConfig(),
                               progress=False, resources=pool)
            wall = time.perf_counter() - t0
            frames = res.summary["frames"]  # frames of all views (summed over views)
            runs.append({"actors": n, "wall_s": round(wall, 2),
                         "frames_all_views": frames,
                         "pipeline_fps": round(frames / wall, 2),
                         "stages_s": {k: round(v, 2) for k, v in
                                      res.summary["timings"].items()}})
        ray.shutdown()
    print(json.dumps({"benchmark": "label_pipeline", "cpus": args.cpus,
                      "scenes": args.scenes, "views": 3, "frames": args.frames,
                      "size": "640x360", "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
