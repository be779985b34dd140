"""Tracking service job for ``ray job submit``:

    ray job submit --working-dir . -- python jobs/serve.py --model RUN/final --port 8000

Same options as ``raysys serve``; connects to the cluster named by RAY_ADDRESS (or
``--address``), else starts a local Ray; serves until the job is stopped.
"""

import sys

from raysys.cli import run_job
from raysys.commands import serve


def _main(args) -> int:
    from raysys.runtime import init_ray

    cfg = serve.build_serve_config(args)
    init_ray(args.address)
    return serve.serve_forever(cfg)


def main(argv: list[str] | None = None) -> int:
    return run_job("jobs/serve.py", serve, _main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
