"""Stage 2 job for ``ray job submit``:

    ray job submit --working-dir . -- python jobs/train.py --labels LABELS --out RUN

Same arguments as ``raysys train``; connects to the cluster through RAY_ADDRESS.
"""

import sys

from raysys.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
