"""Sweep job for ``ray job submit`` (Ray Tune over Ray Train trials):

    ray job submit --working-dir . -- python tune/sweep.py --labels LABELS --out SWEEP --quick

Same options as ``raysys tune``; connects to the cluster named by RAY_ADDRESS (or
``--address``), else starts a local Ray.
"""

import sys

from raysys.cli import run_job
from raysys.commands import tune


def _main(args) -> int:
    from raysys.tune.job import tune_job

    cfg, space, sweep, res = tune.build_sweep(args)
    info = tune_job(args.labels, args.out, cfg, space, sweep, res, val_gt=args.val_gt,
                    resume=args.resume)
    tune.print_summary(info, args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job("tune/sweep.py", tune, _main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
