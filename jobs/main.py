"""Main job entrypoint for ``ray job submit`` (what ``raysys demo`` and ``make demo`` run):

    ray job submit --working-dir . -- python jobs/main.py --out runs/demo

Same options as ``raysys demo`` (the ``main-job`` preset of the report); connects to the
cluster named by RAY_ADDRESS (or ``--address``), else starts a local Ray.
"""

import sys

from raysys.cli import run_job
from raysys.commands import demo


def _main(args) -> int:
    from raysys.report import run_report
    from raysys.report.summary import format_summary

    cfg = demo.demo_config(args)
    print(format_summary(run_report(cfg), cfg.out))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job("jobs/main.py", demo, _main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
