"""``raysys demo``: the main job, the whole pipeline on the embedded default, end to end
on Ray (what ``make demo`` runs).

Generate a benchmark (scenes as Ray tasks), label its In-domain train split (Stage 1),
train ViewSAM weakly and fully supervised (Stage 2, the quick CPU schedule), run the
zero-shot baselines, track the In-domain and Cross-domain test splits, evaluate and write
the report (:func:`raysys.report.run_report` with the ``main-job`` preset of
:class:`raysys.report.ReportConfig`). Every step is resumable. The ablations (Tables 2-3,
one more training run each) are off so that it fits in about 20 minutes on a 2-core CPU;
``--ablations all`` runs them. It takes every option of ``raysys report``.

Examples::

    raysys demo                                  # into runs/demo
    raysys demo --out /tmp/demo --ablations all  # and Tables 2-3
    raysys demo --address auto --train-workers 4 --track-actors 8   # on a cluster
"""

from __future__ import annotations

import argparse
import logging

from raysys.commands.options import add_out

log = logging.getLogger(__name__)

PRESET = "main-job"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from raysys.commands.report import add_report_arguments
    from raysys.report.config import PRESETS

    preset = PRESETS[PRESET]
    add_out(p, f"output folder (default {preset.out})", required=False)
    add_report_arguments(p, preset)


def demo_config(args: argparse.Namespace):
    """The ``main-job`` preset with the options given (named "main job" when it runs the
    ablations)."""
    from raysys.commands.report import build_report_config
    from raysys.report import ReportConfig

    return build_report_config(args, ReportConfig.preset(PRESET))


def run(args: argparse.Namespace) -> int:
    from raysys.report import run_report
    from raysys.report.summary import format_summary

    cfg = demo_config(args)
    log.info("[raysys] main job: generate, label, train (quick), baselines, track, evaluate, "
             "report -> %s", cfg.out)
    if not cfg.ablations:
        log.info("[raysys] ablations are off in this profile (they add a training run each); "
                 "`raysys demo --ablations all` runs them")
    report = run_report(cfg)
    print(format_summary(report, cfg.out))
    print("[raysys] wall time per step: " + ", ".join(
        f"{k} {v:.0f} s" for k, v in report["timing"].items() if k != "total"))
    return 0
