"""Time the whole In-domain CRTrack evaluation (read 240 files, score 40 expressions).

Prints one JSON line: ``{"benchmark": "eval_in_domain", "cpu_s", "wall_s", ...,
"expressions": 40, "All": {...}}`` with best-of-N CPU (``time.process_time``) and wall
times plus their medians. Target: under 1 s of CPU on one core.

Data: ``$RAYSYS_CRTRACK_DIR`` or ``../shared/crtrack`` beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from raysys.eval import evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (best and median)")
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("RAYSYS_CRTRACK_DIR") or
                                     Path(__file__).resolve().parents[2].parent / "shared"
                                     / "crtrack"),
                        help="the CRTrack data bundle (shared/crtrack)")
    args = parser.parse_args(argv)
    gt = args.data / "In-domain" / "gt" / "sorted_gt_test_In-domain"
    pred = args.data / "In-domain" / "Inference_results" / "CRTracker_In-domain"
    if not gt.is_dir():
        print(f"bench_eval: CRTrack data not found at {args.data} (set RAYSYS_CRTRACK_DIR)",
              file=sys.stderr)
        return 2
    cpu, wall = [], []
    result = None
    for _ in range(max(1, args.repeats)):
        c0, w0 = time.process_time(), time.perf_counter()
        result = evaluate(gt, pred)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    summary = result.to_json()
    print(json.dumps({
        "benchmark": "eval_in_domain",
        "cpu_s": round(min(cpu), 4),
        "cpu_s_median": round(statistics.median(cpu), 4),
        "wall_s": round(min(wall), 4),
        "wall_s_median": round(statistics.median(wall), 4),
        "repeats": len(cpu),
        "expressions": len(summary["expressions"]),
        "All": summary["All"],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
