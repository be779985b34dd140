"""``raysys pretrain-reid``: pre-train the embedded OSNet ReID model (torchreid's
``osnet_x0_25``) on person crops of generated scenes of its own seeds (how the shipped
``--reid osnet --reid-checkpoint embedded`` was made; :mod:`raysys.backends.pretrain_reid`
says what it learns from). Runs without Ray; ``--device cuda`` trains in bf16.

Examples::

    raysys pretrain-reid --out runs/reid                  # generates its own data
    cp runs/reid/osnet_reid.pt raysys/backends/weights/osnet_x0_25_synth.pt
    raysys label --data DATA --out LABELS --reid osnet --reid-checkpoint runs/reid/osnet_reid.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from raysys.commands.options import add_pretrain_options, generated_data

HELDOUT_SEED = 5002  # scored only: never trained on


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_pretrain_options(p, "5000 and 5001", 1000)
    p.add_argument("--heldout", type=Path, nargs="*", metavar="DATA",
                   help="generated benchmarks to score cross-view retrieval on (default: "
                        f"OUT/data_{HELDOUT_SEED}, made with seed {HELDOUT_SEED}; none: skip)")


def run(args: argparse.Namespace) -> int:
    from raysys.backends.pretrain_reid import PRETRAIN_SEEDS, pretrain_reid
    from raysys.errors import UserError

    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data = args.data or generated_data(args.out, PRETRAIN_SEEDS, "pretrain-reid", scenes=2)
    heldout = args.heldout if args.heldout is not None else generated_data(
        args.out, [HELDOUT_SEED], "pretrain-reid", scenes=1)
    meta = pretrain_reid(args.out, data, steps=args.steps, seed=args.seed,
                         device=args.device, heldout=heldout)
    print(json.dumps(meta, indent=2))
    print(f"[pretrain-reid] weights: {args.out / 'osnet_reid.pt'}")
    return 0
