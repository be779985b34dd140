"""Tracking job for ``ray job submit``:

    ray job submit --working-dir . -- python jobs/track.py --model RUN/final --data DATA --out PRED

Same options as ``raysys track``; connects to the cluster named by RAY_ADDRESS (or
``--address``), else starts a local Ray.
"""

import sys

from raysys.cli import run_job
from raysys.commands import track


def _main(args) -> int:
    from raysys.commands.options import require_dataset
    from raysys.io.dataset import DatasetLayout
    from raysys.tracking.job import track_job

    require_dataset(args.data)
    res = track_job(args.model, DatasetLayout(args.data, args.domain, args.split), args.out,
                    track.build_track_config(args), track.build_resources(args),
                    allow_missing_views=args.allow_missing_views,
                    allow_partial=args.allow_partial)
    print(f"predictions: {res.pred_root} ({res.units} expressions, {res.fps:.2f} frame sets/s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job("jobs/track.py", track, _main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
