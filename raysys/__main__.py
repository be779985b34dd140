"""``python -m raysys``: the same command line as ``raysys``."""

from raysys.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
