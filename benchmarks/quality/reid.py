"""Cross-view re-identification of the ReID descriptors on GT crops: the weight-free
`stripes` against the embedded OSNet (`--reid osnet --reid-checkpoint embedded`,
`raysys pretrain-reid`), on benchmarks neither was fitted to.

For the test split of each benchmark (default: seeds 10-13 of the `raysys synth` defaults,
both domains, generated here), every 4th frame's GT person boxes of at least 24 px are
cropped; every (scene, view, person) tracklet (mean embedding) queries the tracklets of its
scene's other views (:func:`raysys.backends.pretrain_reid.evaluate_reid`). Prints JSON:

    .venv/bin/python benchmarks/quality/reid.py [--seeds 10 11 12 13] [--data D ...] [--json F]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from raysys.commands.options import write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12, 13])
    ap.add_argument("--data", type=Path, nargs="+", default=None,
                    help="existing benchmarks (their test splits) instead of seeds")
    ap.add_argument("--checkpoint", default="embedded", help="OSNet weights (default: embedded)")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    import torch

    from raysys.backends.pretrain_reid import evaluate_reid, person_crops
    from raysys.backends.reid import OSNetReID, StripesConfig, StripesReID

    torch.set_num_threads(1)
    models = {"stripes": StripesReID(StripesConfig()),
              "osnet": OSNetReID(checkpoint=args.checkpoint)}
    t0 = time.perf_counter()
    per, all_rows = {}, {k: [] for k in models}
    with tempfile.TemporaryDirectory() as tmp:
        datas = args.data
        if datas is None:
            from raysys.synth import SynthConfig, generate

            datas = []
            for seed in args.seeds:
                root = Path(tmp) / f"data-{seed}"
                generate(SynthConfig(seed=seed, splits=("test",)), root)
                datas.append(root)
        for data in datas:
            cs = person_crops([Path(data)], progress=False, splits=("test",))
            per[str(data)] = {k: evaluate_reid(cs, lambda c, m=m: m.embed(list(c)))
                              for k, m in models.items()}
            for k in models:
                all_rows[k].append(per[str(data)][k])
    mean = {k: {m: round(sum(r[m] * r["queries"] for r in rows) / sum(r["queries"] for r in rows),
                         4) for m in ("rank1", "mAP", "margin")} for k, rows in all_rows.items()}
    result = {"benchmarks": [str(d) for d in args.data] if args.data else
              [f"synth seed {s} (defaults), test split, both domains" for s in args.seeds],
              "checkpoint": args.checkpoint, "mean_over_queries": mean, "per_benchmark": per,
              "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
