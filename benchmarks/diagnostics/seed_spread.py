"""How far one ViewSAM moves between training seeds: train it under several seeds, score each.

For each seed, trains the report preset's model (``ReportConfig.preset(--preset)``: its
schedule, sizes and resources) with ``TrainConfig.seed`` set, optionally with one
``ViewSAMConfig`` switch off (an ablation row of Tables 2-3), then tracks the In-domain test
split of each ``--eval`` dataset and scores it (CVR-IDF1 / CVR-MA, All). Training and
tracking each run in a fresh process (:func:`raysys.runtime.run_isolated`), so a weak run's
GT guard covers its training only; the scores are computed here, from GT, for evaluation.

Weak runs learn from ``--labels`` (a ``raysys label`` output); fully supervised runs from
the GT of ``--data``'s In-domain train split. A run folder already finished
(``RUN/final``) is tracked again but not retrained; predictions already written are
scored as they are. Prints one JSON object (also written to ``--json``):

    python benchmarks/diagnostics/seed_spread.py --data D --labels D/labels \\
        --supervision weak --seeds 0 1 2 --eval D --eval VAL --out /tmp/spread \\
        [--switch-off use_vcca] [--preset main-job] [--json F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path


def run_seed(args, seed: int) -> dict:
    """Train (unless done), track and score one seed; returns its row."""
    from raysys.eval import evaluate
    from raysys.io.dataset import DatasetLayout
    from raysys.report.config import ReportConfig
    from raysys.runtime import run_isolated
    from raysys.tracking.config import TrackConfig
    from raysys.tracking.job import track_job
    from raysys.training.job import train_job

    rc = ReportConfig.preset(args.preset)
    cfg = dataclasses.replace(rc.train_config(args.supervision, args.switch_off), seed=seed)
    name = f"{args.supervision}_{args.switch_off or 'complete'}_s{seed}"
    run = args.out / name
    source = ({"labels": args.labels} if args.supervision == "weak" else
              {"data": args.data, "domain": "In-domain", "split": "train"})
    row = {"seed": seed, "run": str(run), "train_seconds": None}  # None: trained before
    if not (run / "final").is_dir():
        t0 = time.perf_counter()
        run_isolated(train_job, run, cfg, rc.resources, call_file=args.out / f"{name}.call",
                     **source)
        row["train_seconds"] = round(time.perf_counter() - t0, 1)
    for i, data in enumerate(args.eval):
        pred = args.out / f"pred_{name}_{i}"
        if not (pred / "track_config.json").is_file():
            run_isolated(track_job, run / "final", DatasetLayout(data, "In-domain", "test"),
                         pred, TrackConfig(), rc.resources,
                         call_file=args.out / f"{name}_{i}.call", progress=False)
        res = evaluate(DatasetLayout(data, "In-domain", "test").gt_root, pred,
                       missing_as_empty=True).to_json()["All"]
        row[str(data)] = {"CVR-IDF1": round(res["CVR-IDF1"], 2),
                          "CVR-MA": round(res["CVR-MA"], 2)}
    print(json.dumps(row), flush=True)
    return row


def summarize(rows: list[dict], evals: list[str]) -> dict:
    """Per eval dataset: mean, population standard deviation, min and max of CVR-IDF1."""
    out = {}
    for d in evals:
        xs = [r[d]["CVR-IDF1"] for r in rows]
        out[d] = {"mean": round(statistics.fmean(xs), 2),
                  "std": round(statistics.pstdev(xs), 2), "min": min(xs), "max": max(xs)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="generated dataset (training)")
    ap.add_argument("--labels", type=Path, help="Stage 1 output (weak runs)")
    ap.add_argument("--supervision", choices=("weak", "full"), default="weak")
    ap.add_argument("--switch-off", default=None,
                    help="a ViewSAMConfig switch turned off, e.g. use_vcca (an ablation row)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--eval", type=Path, action="append", default=None,
                    help="dataset whose In-domain test split is scored (repeatable; "
                         "default: --data)")
    ap.add_argument("--preset", default="main-job")
    ap.add_argument("--out", type=Path, required=True, help="folder for runs and predictions")
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.supervision == "weak" and args.labels is None:
        ap.error("--supervision weak needs --labels (a `raysys label` output)")
    if args.switch_off is not None:
        from raysys.report.config import ABLATIONS

        if args.switch_off not in ABLATIONS:
            ap.error(f"--switch-off {args.switch_off}: not one of {', '.join(ABLATIONS)}")
    args.eval = args.eval or [args.data]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run_seed(args, s) for s in args.seeds]
    res = {"bench": "seed_spread", "supervision": args.supervision,
           "switch_off": args.switch_off, "preset": args.preset, "seeds": args.seeds,
           "rows": rows, "summary": summarize(rows, [str(d) for d in args.eval])}
    text = json.dumps(res)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
