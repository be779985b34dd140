"""``raysys report``: the paper's tables on the generated benchmark, and the main job's
whole pipeline (generate, label, train, track, evaluate, report).

* :mod:`raysys.report.config`: :class:`ReportConfig` and the ablation switch names;
* :mod:`raysys.report.runner`: resumable steps, CLI subprocesses on one Ray cluster;
* :mod:`raysys.report.steps`: one function per step;
* :mod:`raysys.report.tables`: report.json, Markdown tables, target checks;
* :mod:`raysys.report.charts`: PNG bar charts;
* :mod:`raysys.report.pipeline`: :func:`run_report`.
"""

from raysys.report.config import ABLATIONS, BASELINES, ReportConfig, parse_ablations
from raysys.report.pipeline import run_report, write_report

__all__ = ["ABLATIONS", "BASELINES", "ReportConfig", "parse_ablations", "run_report",
           "write_report"]
