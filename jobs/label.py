"""Stage 1 job for ``ray job submit``:

    ray job submit --working-dir . -- python jobs/label.py --data DATA --out LABELS

Same arguments as ``raysys label``; connects to the cluster through RAY_ADDRESS.
"""

import sys

from raysys.cli import main

if __name__ == "__main__":
    sys.exit(main(["label", *sys.argv[1:]]))
