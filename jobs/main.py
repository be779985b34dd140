"""Main job entrypoint for ``ray job submit``.

    ray job submit --working-dir . -- python jobs/main.py --out runs/demo

Same arguments as ``raysys demo``; connects to the cluster through RAY_ADDRESS.
"""

import sys

from raysys.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
