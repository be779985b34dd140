"""The main job's wall time: the whole pipeline on the embedded default, from nothing.

Runs the main job (the ``main-job`` preset of :class:`raysys.report.ReportConfig`, what
``raysys demo`` runs: generate, label, train weak + full, baselines, track, evaluate,
report) into a scratch folder, prints one JSON line (seconds per step, the total, and the
headline numbers; target on this 2-core machine: total < 1200 s) and writes it to
``--json`` (``benchmarks/results/main_job_cpu.json``):

    python benchmarks/speed/main.py --out /tmp/bench_main [--keep] [--json F]

``--train-config C.json`` measures a variant: its training schedule merged into the main
job's, as ``raysys report --preset main-job --train-config C.json`` merges it (give
``--json`` another file then, so the default's figures stay).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_main"),
                    help="scratch folder (emptied first unless --keep)")
    ap.add_argument("--keep", action="store_true",
                    help="keep earlier outputs (measures a resumed run instead)")
    ap.add_argument("--ablations", default="none", help="as in `raysys demo`")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/main_job_cpu.json"),
                    help="where the JSON line is written too ('-': printed only)")
    ap.add_argument("--train-config", type=Path, metavar="FILE",
                    help="a variant: this training config merged into the main job's")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)

    import dataclasses

    from raysys.report import ReportConfig, parse_ablations, run_report
    from raysys.report.tables import teacher_score
    from raysys.runtime import configure_logging

    configure_logging("INFO")
    ablations = parse_ablations(args.ablations)
    cfg = dataclasses.replace(ReportConfig.preset("main-job"), out=args.out,
                              ablations=ablations)
    if ablations:  # as `raysys demo --ablations ...` names it
        cfg = dataclasses.replace(cfg, profile="main job")
    if args.train_config is not None:
        from raysys.config import load_config
        from raysys.training.config import TrainConfig

        cfg = dataclasses.replace(cfg, train=load_config(TrainConfig, args.train_config,
                                                         cfg.train))
    t0 = time.perf_counter()
    report = run_report(cfg)
    wall = time.perf_counter() - t0
    all_in = {m: r["All"] for m, r in report["table1"].items()}
    res = {
        "bench": "main_job", "cpus": os.cpu_count(), "wall_s": round(wall, 1),
        "train_config": None if args.train_config is None else json.loads(
            args.train_config.read_text()),
        "target_s": 1200, "within_target": wall < 1200,
        "steps_s": {k: round(v, 1) for k, v in report["timing"].items()},
        "skipped_steps": report["config"].get("skipped_steps", []),
        "in_domain_all": all_in,
        "cross_domain_all": {m: r["All"] for m, r in report.get("cross_domain", {}).items()},
        "teacher_on_test": teacher_score(report.get("pseudo_labels_test")),
        "targets": {t["target"]: t["passed"] for t in report["targets"]},
    }
    print(json.dumps(res))
    if str(args.json) != "-":
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
