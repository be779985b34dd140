"""``raysys report``: the paper's tables on the generated benchmark (Markdown, JSON, charts).

Given only ``--out`` it generates the benchmark and runs every step itself (label, train
weak / full / ablations, baselines, track, evaluate); the options point it at existing
data, labels and models instead. Re-running skips finished steps. The settings are
:class:`raysys.report.ReportConfig`: a preset (``--preset``), then ``--config FILE``, then
the flags; ``raysys demo`` is the ``main-job`` preset.

Examples::

    raysys report --out runs/report
    raysys report --out runs/report2 --data DATA --labels LABELS --weak-model RUN/final \\
        --full-model RUN_FULL/final --ablations use_bar,use_cgct
    raysys report --out runs/demo --preset main-job --ablations all   # the demo + Tables 2-3
    raysys report --out runs/demo --preset main-job --ablations all --ablation-models full
    raysys report --out runs/r3 --config report.yaml    # e.g. {synth: {scenes: 4}}
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from raysys.commands.options import (
    add_address,
    add_allow_partial,
    add_config,
    add_data,
    add_labels,
    add_model,
    add_out,
    build_config,
)
from raysys.errors import UserError


def add_report_arguments(p: argparse.ArgumentParser, preset) -> None:
    """The options of ``raysys report`` and ``raysys demo``; help shows ``preset``'s
    defaults (a :class:`raysys.report.ReportConfig`)."""
    from raysys.report.config import ABLATIONS

    d, s, r = preset, preset.synth, preset.resources
    add_config(p, "ReportConfig")
    add_data(p, required=False, help="existing benchmark root (default: generate one)")
    add_labels(p, help="existing Stage 1 output of the In-domain train split")
    add_model(p, flag="--weak-model", help="existing weakly supervised ViewSAM checkpoint "
              "folder (RUN/final; default: train one)")
    add_model(p, flag="--full-model", help="existing fully supervised ViewSAM checkpoint "
              "folder (default: train one)")
    add_allow_partial(p, "--weak-model / --full-model")
    p.add_argument("--ablations", metavar="LIST",
                   help="Tables 2-3: none | all | comma list of switches, e.g. use_bar,cgct "
                        f"(default {'all' if d.ablations == ABLATIONS else 'none'})")
    p.add_argument("--ablation-models", metavar="LIST",
                   help="the supervisions of the ablation runs: all | full | weak (default "
                        f"{','.join(d.ablation_models)}; full alone: the paper's Tables 2-3, "
                        "half the training runs)")
    p.add_argument("--baselines", metavar="LIST", help="none | all | comma list of "
                   "zero_shot_concept,zero_shot_sam2 (default all)")
    p.add_argument("--no-cross-domain", action="store_true", help="In-domain test only")
    p.add_argument("--no-video", action="store_true", help="skip the mosaic GIF")
    p.add_argument("--no-teacher-reference", action="store_true",
                   help="skip Stage 1 on the In-domain test split (the teacher's level there, "
                        "a reference line under Table 1)")
    g = p.add_argument_group("generated benchmark (SynthConfig)")
    for name, help_ in (("seed", "benchmark seed"), ("scenes", "scenes per split"),
                        ("views", "cameras per In-domain scene"),
                        ("frames", "frames per video"), ("people", "people per scene")):
        g.add_argument(f"--{name}", type=int, metavar="N",
                       help=f"{help_} (default {getattr(s, name)})")
    g = p.add_argument_group("training and resources")
    g.add_argument("--train-config", type=Path, metavar="FILE",
                   help="JSON or YAML of TrainConfig fields for every run (merged into the "
                        "quick schedule)")
    g.add_argument("--train-workers", type=int, metavar="N",
                   help=f"DDP workers (default {r.workers})")
    g.add_argument("--train-cpus-per-worker", type=float, metavar="CPUS",
                   help=f"CPUs per training worker (default {r.cpus_per_worker})")
    g.add_argument("--track-actors", type=int, metavar="N",
                   help=f"tracking actors (default {r.track_actors})")
    g.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of a local Ray (default: all)")
    add_address(g)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from raysys.report.config import PRESETS

    add_out(p, "report folder (resumable)")
    p.add_argument("--preset", choices=list(PRESETS), default="report",
                   help="the settings to start from (default report: every table; main-job: "
                        "what `raysys demo` runs)")
    add_report_arguments(p, PRESETS["report"])


def build_report_config(args: argparse.Namespace, preset):
    """``ReportConfig``: ``preset``, then ``--config``, then the flags given, then
    ``--train-config`` merged into its training schedule. A profile named "..., ablations
    off" that runs ablations loses that suffix."""
    from raysys.config import load_config
    from raysys.report.config import parse_ablation_models, parse_ablations, parse_baselines
    from raysys.training.config import TrainConfig

    over = {
        "out": args.out, "data": args.data, "labels": args.labels,
        "weak_model": args.weak_model, "full_model": args.full_model,
        "allow_partial": True if args.allow_partial else None,
        "ablations": None if args.ablations is None else parse_ablations(args.ablations),
        "ablation_models": None if args.ablation_models is None
        else parse_ablation_models(args.ablation_models),
        "baselines": None if args.baselines is None else parse_baselines(args.baselines),
        "cross_domain": False if args.no_cross_domain else None,
        "video": False if args.no_video else None,
        "teacher_reference": False if args.no_teacher_reference else None,
        "synth": {k: getattr(args, k) for k in ("seed", "scenes", "views", "frames", "people")},
        "resources": {"workers": args.train_workers,
                      "cpus_per_worker": args.train_cpus_per_worker,
                      "track_actors": args.track_actors, "num_cpus": args.num_cpus,
                      "address": args.address},
    }
    cfg = build_config(type(preset), args.config, over, preset)
    if args.train_config is not None:
        try:
            train = load_config(TrainConfig, args.train_config, cfg.train)
        except ValueError as e:
            raise UserError(f"--train-config: {e}") from None
        cfg = dataclasses.replace(cfg, train=train)
    off = ", ablations off"
    if cfg.ablations and cfg.profile.endswith(off):
        cfg = dataclasses.replace(cfg, profile=cfg.profile[:-len(off)])
    return cfg


def run(args: argparse.Namespace) -> int:
    from raysys.report import ReportConfig, run_report
    from raysys.report.summary import format_summary

    cfg = build_report_config(args, ReportConfig.preset(args.preset))
    report = run_report(cfg)
    print(format_summary(report, cfg.out))
    return 0
