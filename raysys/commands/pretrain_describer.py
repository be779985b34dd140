"""``raysys pretrain-describer``: pre-train the embedded describer's attribute net on GT
person crops of generated scenes of its own seeds (how the shipped default describer,
``"attributes"``, was made; :mod:`raysys.backends.pretrain_describer` says what it learns
from). Runs without Ray.

Examples::

    raysys pretrain-describer --out runs/desc                # generates its own data
    raysys pretrain-describer --out runs/desc --device cuda  # bf16 autocast on a GPU
    cp runs/desc/attribute_net.pt raysys/backends/weights/attribute_net_synth.pt
    # or, in a Stage 1 config (raysys label --config cfg.json):
    # {"describer_options": {"weights": "runs/desc/attribute_net.pt"}}
"""

from __future__ import annotations

import argparse
import json

from raysys.commands.options import add_pretrain_options, generated_data


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_pretrain_options(p, "4010-4080 (16 frames each)", 36000)
    p.add_argument("--per-view", type=int, default=8,
                   help="crops per person and camera (default 8)")


def run(args: argparse.Namespace) -> int:
    from raysys.backends.attribute_net import PRETRAIN_FRAMES, PRETRAIN_SEEDS
    from raysys.backends.pretrain_describer import pretrain_attribute_net

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = args.data
    if not data:
        data = generated_data(args.out, PRETRAIN_SEEDS, "pretrain-describer",
                              frames=PRETRAIN_FRAMES)
    meta = pretrain_attribute_net(args.out, data, steps=args.steps, seed=args.seed,
                                  device=args.device, per_view=args.per_view)
    print(json.dumps(meta, indent=2))
    print(f"[pretrain-describer] weights: {args.out / 'attribute_net.pt'}")
    return 0
