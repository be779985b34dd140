"""``raysys pretrain-detector``: pre-train the classical tracker's optional person detector
on generated scenes of its own seeds (how the shipped ``person_detector="embedded"`` was
made; :mod:`raysys.backends.classical.pretrain_detector` says what it learns from).

Examples::

    raysys pretrain-detector --out runs/det                # generates its own data
    cp runs/det/person_net.pt raysys/backends/weights/person_net_synth.pt
    # then, in a Stage 1 config (raysys label --config cfg.json):
    # {"tracker_options": {"person_detector": "runs/det/person_net.pt"}}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from raysys.commands.options import add_out, generated_data


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out(p, "output folder")
    p.add_argument("--data", type=Path, nargs="+", metavar="DATA",
                   help="generated benchmarks to learn from (default: OUT/data_<seed>, made "
                        "with the pre-training seeds 2000 and 2001, every domain and split)")
    p.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")


def run(args: argparse.Namespace) -> int:
    from raysys.backends.classical.person_net import PRETRAIN_SEEDS
    from raysys.backends.classical.pretrain_detector import pretrain_person_detector

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = args.data
    if not data:
        data = generated_data(args.out, PRETRAIN_SEEDS, "pretrain-detector")
    meta = pretrain_person_detector(args.out, data, steps=args.steps, seed=args.seed)
    print(json.dumps(meta, indent=2))
    print(f"[pretrain-detector] weights: {args.out / 'person_net.pt'}")
    return 0
