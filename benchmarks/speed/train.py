"""Stage 2 cost on this machine: the quick schedule (or a --config) with Ray Train.

Prints one JSON line: per-epoch seconds and losses, fit wall time, clips per epoch, and the
loss first -> last, for ``--workers`` DDP workers of ``--cpus-per-worker`` CPUs each:

    python benchmarks/speed/train.py --labels LABELS --out /tmp/bench_train --workers 2 \\
        --cpus-per-worker 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, required=True, help="a `raysys label` output")
    ap.add_argument("--out", type=Path, required=True, help="scratch run folder (replaced)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cpus-per-worker", type=float, default=0.5)
    ap.add_argument("--config", type=Path, help="JSON overrides of the quick TrainConfig")
    args = ap.parse_args(argv)
    import ray

    from raysys.config import load_config
    from raysys.runtime import Resources
    from raysys.training.config import TrainConfig, quick_config
    from raysys.training.sources import open_source
    from raysys.training.trainer import run_training

    cfg = quick_config()
    if args.config:
        cfg = load_config(TrainConfig, args.config, cfg)
    shutil.rmtree(args.out, ignore_errors=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    res = run_training(open_source("weak", args.labels), args.out, cfg,
                       Resources(workers=args.workers, cpus_per_worker=args.cpus_per_worker),
                       progress=False)
    h = res.history
    print(json.dumps({
        "benchmark": "train_quick", "workers": args.workers,
        "cpus_per_worker": args.cpus_per_worker, "clips_per_epoch": res.samples,
        "fit_s": round(res.seconds, 1),
        "epochs": [{"epoch": r["epoch"], "stage": r["stage"], "seconds": r["seconds"],
                    "loss": round(r["loss"], 4)} for r in h],
        "loss_first": round(h[0]["loss"], 4), "loss_last": round(h[-1]["loss"], 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
