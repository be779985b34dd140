"""Stage 2 job for ``ray job submit``:

    ray job submit --working-dir . -- python jobs/train.py --labels LABELS --out RUN --quick

Same options as ``raysys train``; connects to the cluster named by RAY_ADDRESS (or
``--address``), else starts a local Ray.
"""

import sys

from raysys.cli import run_job
from raysys.commands import train


def _main(args) -> int:
    from raysys.training.job import train_job

    res = train_job(args.out, train.build_train_config(args), train.build_resources(args),
                    labels=args.labels, data=args.data, domain=args.domain, split=args.split)
    print(f"final model: {res.final} ({len(res.history)} epochs, {res.seconds:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job("jobs/train.py", train, _main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
