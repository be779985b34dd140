"""``raysys report``: the paper's tables on the generated benchmark (Markdown, JSON, charts).

Given only ``--out`` it generates the benchmark and runs every step itself (label, train
weak / full / ablations, baselines, track, evaluate); the options point it at existing
data, labels and checkpoints instead. Re-running skips finished steps.

Examples::

    raysys report --out runs/report
    raysys report --out runs/report2 --data DATA --labels-dir LABELS --weak RUN/final \\
        --full RUN_FULL/final --ablations use_bar,use_cgct
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raysys.commands import read_json_option


def add_arguments(p: argparse.ArgumentParser) -> None:
    from raysys.report.config import ReportConfig

    d = ReportConfig()
    p.add_argument("--out", type=Path, required=True, help="report folder (resumable)")
    p.add_argument("--data", type=Path, help="existing benchmark root (default: generate one)")
    p.add_argument("--labels-dir", type=Path,
                   help="existing Stage 1 output of the In-domain train split")
    p.add_argument("--weak", type=Path, help="existing weak ViewSAM checkpoint (RUN/final)")
    p.add_argument("--full", type=Path, help="existing fully supervised checkpoint")
    p.add_argument("--ablations", default="all",
                   help="none | all | comma list of switches, e.g. use_bar,cgct (default all)")
    p.add_argument("--baselines", default="all",
                   help="none | all | comma list of zero_shot_concept,zero_shot_sam2")
    p.add_argument("--no-cross-domain", action="store_true", help="In-domain test only")
    p.add_argument("--no-video", action="store_true", help="skip the mosaic GIF")
    p.add_argument("--no-teacher-reference", action="store_true",
                   help="skip Stage 1 on the In-domain test split (the teacher's level there, "
                        "a reference line under Table 1)")
    p.add_argument("--seed", type=int, default=d.seed, help="benchmark seed")
    p.add_argument("--scenes", type=int, default=d.scenes, help="scenes per split")
    p.add_argument("--frames", type=int, default=d.frames, help="frames per video")
    p.add_argument("--people", type=int, default=d.people, help="people per scene")
    p.add_argument("--train-workers", type=int, default=d.train_workers)
    p.add_argument("--train-cpus-per-worker", type=float, default=d.train_cpus_per_worker)
    p.add_argument("--track-actors", type=int, default=d.track_actors)
    p.add_argument("--train-config", type=Path,
                   help="JSON of TrainConfig overrides for every run (merged into --quick's)")
    p.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")


def _baselines(spec: str) -> tuple[str, ...]:
    from raysys.report.config import BASELINES

    s = spec.strip().lower()
    if s == "all":
        return BASELINES
    if s in ("none", ""):
        return ()
    names = [n.strip() for n in spec.split(",") if n.strip()]
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise ValueError(f"unknown baselines {bad}; valid: all, none, {', '.join(BASELINES)}")
    return tuple(b for b in BASELINES if b in names)


def build_config(args: argparse.Namespace):
    from raysys.report.config import ReportConfig, parse_ablations

    extra = read_json_option(args.train_config, "--train-config")
    return ReportConfig(
        out=args.out, data=args.data, labels=args.labels_dir, weak=args.weak, full=args.full,
        ablations=parse_ablations(args.ablations), baselines=_baselines(args.baselines),
        cross_domain=not args.no_cross_domain, video=not args.no_video,
        teacher_reference=not args.no_teacher_reference, seed=args.seed,
        scenes=args.scenes, frames=args.frames, people=args.people,
        train_workers=args.train_workers, train_cpus_per_worker=args.train_cpus_per_worker,
        track_actors=args.track_actors, num_cpus=args.num_cpus, address=args.address,
        extra_train=extra)


def print_summary(report: dict, out: Path) -> None:
    """The targets and Table 1 on the console, and where everything is."""
    from raysys.report.tables import METHOD_NAMES, teacher_score

    for key, title in (("table1", "In-domain test"), ("cross_domain", "Cross-domain test")):
        rows = report.get(key) or {}
        if not rows:
            continue
        print(f"\n[raysys report] Table 1, {title} (All):")
        print(f"  {'method':40s} {'CVR-IDF1':>9s} {'CVR-MA':>9s}")
        for m, r in rows.items():
            a = r["All"]
            print(f"  {METHOD_NAMES.get(m, m):40s} {_f(a.get('CVR-IDF1')):>9s} "
                  f"{_f(a.get('CVR-MA')):>9s}")
        tch = teacher_score(report.get("pseudo_labels_test")) if key == "table1" else None
        if tch is not None:
            print(f"  {'(reference) Stage 1 offline on test':40s} "
                  f"{_f(tch.get('CVR-IDF1')):>9s} {_f(tch.get('CVR-MA')):>9s}")
    print("\n[raysys report] targets:")
    for t in report.get("targets", []):
        mark = {True: "met", False: "MISSED", None: "not measured"}[t["passed"]]
        print(f"  [{mark}] {t['target']}: {t.get('text', '')}")
    print(f"\n[raysys report] report: {out / 'report.md'}  (numbers: {out / 'report.json'})")
    if (report.get("video") or {}).get("gif"):
        print(f"[raysys report] video:  {report['video']['gif']}")
    t = report.get("timing", {})
    if "total" in t:
        print(f"[raysys report] took {t['total']:.1f} s")


def _f(x) -> str:
    return "-" if x is None else f"{float(x):.2f}"


def run(args: argparse.Namespace) -> int:
    from raysys.report.pipeline import run_report
    from raysys.report.runner import StepError

    try:
        cfg = build_config(args)
        report = run_report(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"raysys report: error: {e}", file=sys.stderr)
        return 2
    except StepError as e:
        print(f"raysys report: {e}", file=sys.stderr)
        return 1
    print_summary(report, cfg.out)
    return 0
