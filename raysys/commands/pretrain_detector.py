"""``raysys pretrain-detector``: pre-train the classical tracker's optional person detector
on generated scenes of its own seeds (how the shipped ``person_detector="embedded"`` was
made; :mod:`raysys.backends.classical.pretrain_detector` says what it learns from).

Examples::

    raysys pretrain-detector --out runs/det                # generates its own data
    cp runs/det/person_net.pt raysys/backends/weights/person_net_synth.pt
    # then, in a Stage 1 config (raysys label --config cfg.json):
    # {"tracker_options": {"person_detector": "runs/det/person_net.pt"}}
    raysys pretrain-detector --out runs/det --rgb-only     # the frame alone: person_net_rgb.pt
    # a single-image detector: ViewSAM's proposal_net ("embedded" is the shipped one)
"""

from __future__ import annotations

import argparse
import json

from raysys.commands.options import add_pretrain_options, generated_data


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_pretrain_options(p, "2000 and 2001", 3000, device=False)
    p.add_argument("--rgb-only", action="store_true",
                   help="read the frame alone, without the classical tracker's foreground "
                        "channel (a single-image detector: the Candidate Generator's "
                        "proposal_net); writes OUT/person_net_rgb.pt")


def run(args: argparse.Namespace) -> int:
    from raysys.backends.classical.person_net import PRETRAIN_SEEDS
    from raysys.backends.classical.pretrain_detector import (
        WEIGHTS_FILE,
        pretrain_person_detector,
    )

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = args.data
    if not data:
        data = generated_data(args.out, PRETRAIN_SEEDS, "pretrain-detector")
    meta = pretrain_person_detector(args.out, data, steps=args.steps, seed=args.seed,
                                    rgb_only=args.rgb_only)
    print(json.dumps(meta, indent=2))
    print(f"[pretrain-detector] weights: {args.out / WEIGHTS_FILE[args.rgb_only]}")
    return 0
