"""Stage 1 job for ``ray job submit``:

    ray job submit --working-dir . -- python jobs/label.py --data DATA --out LABELS

Same options as ``raysys label``; connects to the cluster named by RAY_ADDRESS (or
``--address``), else starts a local Ray.
"""

import sys

from raysys.cli import run_job
from raysys.commands import label


def _main(args) -> int:
    from raysys.commands.options import require_dataset
    from raysys.io.dataset import DatasetLayout
    from raysys.labeling.job import label_job

    cfg = label.build_label_config(args)
    require_dataset(args.data)
    res = label_job(DatasetLayout(args.data, args.domain, args.split), args.out, cfg,
                    label.build_resources(args, cfg),
                    allow_missing_views=args.allow_missing_views)
    print(f"labels: {res.out} ({res.summary['expressions']} expressions)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job("jobs/label.py", label, _main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
