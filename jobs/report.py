"""Report job for ``ray job submit``:

    ray job submit --working-dir . -- python jobs/report.py --out runs/report

Same options as ``raysys report``; connects to the cluster named by RAY_ADDRESS (or
``--address``), else starts a local Ray.
"""

import sys

from raysys.cli import run_job
from raysys.commands import report


def _main(args) -> int:
    from raysys.report import ReportConfig, run_report
    from raysys.report.summary import format_summary

    cfg = report.build_report_config(args, ReportConfig.preset(args.preset))
    print(format_summary(run_report(cfg), cfg.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job("jobs/report.py", report, _main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
