"""``raysys demo``: the main job, the whole pipeline on the embedded default
(see :mod:`raysys.main_job`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from raysys.main_job import MainJobConfig

    d = MainJobConfig()
    p.add_argument("--out", type=Path, default=d.out, help="output folder (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--scenes", type=int, default=d.scenes, help="scenes per split")
    p.add_argument("--views", type=int, default=d.views)
    p.add_argument("--frames", type=int, default=d.frames)
    p.add_argument("--people", type=int, default=d.people)
    p.add_argument("--ablations", default="none",
                   help="Tables 2-3: none (default, fits 20 min on 2 cores) | all | a,b")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def run(args: argparse.Namespace) -> int:
    from raysys.main_job import MainJobConfig, run_main_job
    from raysys.report import parse_ablations
    from raysys.report.runner import StepError

    try:
        cfg = MainJobConfig(out=args.out, seed=args.seed, scenes=args.scenes, views=args.views,
                            frames=args.frames, people=args.people, address=args.address,
                            ablations=parse_ablations(args.ablations))
        run_main_job(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"raysys demo: error: {e}", file=sys.stderr)
        return 2
    except StepError as e:
        print(f"raysys demo: {e}", file=sys.stderr)
        return 1
    return 0
