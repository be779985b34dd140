"""``raysys demo``: the main job on the embedded default (see raysys.main_job)."""

from __future__ import annotations

import argparse
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
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def run(args: argparse.Namespace) -> int:
    from raysys.main_job import MainJobConfig, run_main_job

    cfg = MainJobConfig(out=args.out, seed=args.seed, scenes=args.scenes, views=args.views,
                        frames=args.frames, people=args.people, address=args.address)
    run_main_job(cfg)
    return 0
