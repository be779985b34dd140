"""``raysys pretrain-detector``: pre-train the classical tracker's optional person detector
on generated scenes of its own seeds (how the shipped ``person_detector="embedded"`` was
made; :mod:`raysys.training.pretrain_detector` says what it learns from).

Examples::

    raysys pretrain-detector --out runs/det                # generates its own data
    cp runs/det/person_net.pt raysys/labeling/backends/weights/person_net_synth.pt
    # then, in a Stage 1 config (raysys label --config cfg.json):
    # {"tracker_options": {"person_detector": "runs/det/person_net.pt"}}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--data", type=Path, nargs="+",
                   help="generated benchmarks to learn from (default: OUT/data_<seed>, made "
                        "with the pre-training seeds 2000 and 2001, every domain and split)")
    p.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")


def run(args: argparse.Namespace) -> int:
    from raysys.labeling.backends.classical.person_net import PRETRAIN_SEEDS
    from raysys.training.pretrain_detector import pretrain_person_detector

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        data = args.data
        if not data:
            from raysys.synth import SynthConfig, generate

            data = []
            for seed in PRETRAIN_SEEDS:
                d = args.out / f"data_{seed}"
                if not (d / "dataset.json").is_file():
                    print(f"[pretrain-detector] generating scenes of seed {seed} -> {d}")
                    generate(SynthConfig(seed=seed), d)
                data.append(d)
        meta = pretrain_person_detector(args.out, data, steps=args.steps, seed=args.seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"raysys pretrain-detector: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(meta, indent=2))
    print(f"[pretrain-detector] weights: {args.out / 'person_net.pt'}")
    return 0
