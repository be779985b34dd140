"""``raysys report``: the paper's tables on the generated benchmark, and the main job's
whole pipeline (generate, label, train, track, evaluate, report).

* :mod:`raysys.report.config`: :class:`ReportConfig`, its presets (``"main-job"``) and the
  ablation switch names;
* :mod:`raysys.report.runner`: resumable steps, heavy ones in processes of their own on one
  Ray cluster;
* :mod:`raysys.report.steps`: one function per step;
* :mod:`raysys.report.tables`: report.json, Markdown tables, target checks;
* :mod:`raysys.report.diagnostics`, :mod:`raysys.report.oracle`: the diagnostics section
  (each part of a trained model on the test split, GT read for evaluation);
  :mod:`raysys.report.diagnostics_table`: its report.json part and Markdown;
* :mod:`raysys.report.charts`: PNG bar charts;
* :mod:`raysys.report.summary`: the console summary;
* :mod:`raysys.report.pipeline`: :func:`run_report`.
"""

from raysys.report.config import (
    ABLATIONS,
    BASELINES,
    PRESETS,
    ReportConfig,
    parse_ablations,
    parse_baselines,
)
from raysys.report.pipeline import run_report, write_report

__all__ = ["ABLATIONS", "BASELINES", "PRESETS", "ReportConfig", "parse_ablations",
           "parse_baselines", "run_report", "write_report"]
