"""Time the per-clip encoder of N streams one clip at a time against one batch.

``raysys.tracking.encode.encode_clips`` is what a serving replica runs under
``@serve.batch`` (docs/serve.md, "Batching the per-clip encoder"). Random-init tiny ViewSAM
(64 px), 2 views at 320x180, T = 4, one torch thread, median of ``--repeats`` runs each.
Prints one JSON line per N.

    python benchmarks/speed/encode_batch.py --clips 1,4,8
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    import numpy as np
    import torch

    from raysys.tracking import MultiExpressionTracker, TrackConfig
    from raysys.tracking.encode import clip_input, encode_clips
    from raysys.training.config import StageConfig, quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", default="1,4,8")
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = quick_config(clip_frames=4, image_size=64, sam2_image_size=64, max_objects=4,
                       max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),))
    model = build_model(cfg, sam2_yaml_text(None, 64)).eval()
    rng = np.random.default_rng(0)
    tc = TrackConfig(clip_frames=4, keep_masks=False)

    def frame_set():
        return [rng.integers(0, 255, (180, 320, 3), dtype=np.uint8) for _ in range(2)]

    for n in (int(x) for x in a.clips.split(",")):
        inputs = []
        for _ in range(n):
            tr = MultiExpressionTracker(model, ["a person in a red coat"], 2, tc)
            for _ in range(3):
                tr.step(frame_set())
            inputs.append(clip_input(tr, frame_set()))
        alone, batch = [], []
        for _ in range(a.repeats):
            t = time.perf_counter()
            for c in inputs:
                encode_clips(model, [c])
            alone.append(time.perf_counter() - t)
            t = time.perf_counter()
            encode_clips(model, inputs)
            batch.append(time.perf_counter() - t)
        ma, mb = statistics.median(alone), statistics.median(batch)
        print(json.dumps({"benchmark": "encode_batch", "clips": n,
                          "one_at_a_time_ms": round(ma * 1000, 1),
                          "one_batch_ms": round(mb * 1000, 1), "speedup": round(ma / mb, 2)}))


if __name__ == "__main__":
    main()
