"""Tracking job for ``ray job submit``:

    ray job submit --working-dir . -- python jobs/track.py --model RUN/final --data DATA --out PRED

Same arguments as ``raysys track``; connects to the cluster through RAY_ADDRESS.
"""

import sys

from raysys.cli import main

if __name__ == "__main__":
    sys.exit(main(["track", *sys.argv[1:]]))
