"""Report job for ``ray job submit``:

    ray job submit --working-dir . -- python jobs/report.py --out runs/report

Same arguments as ``raysys report``; connects to the cluster through RAY_ADDRESS.
"""

import sys

from raysys.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
