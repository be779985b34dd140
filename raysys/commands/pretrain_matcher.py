"""``raysys pretrain-matcher``: pre-train the Candidate Generator's text matcher, the text
side of its APTM analogue (:mod:`raysys.viewsam.text_matcher`), on the GT expressions and
boxes of generated scenes of its own seeds (how the shipped ``text_matcher="embedded"``
was made; :mod:`raysys.training.pretrain_matcher` says what it learns from). Runs without
Ray.

Examples::

    raysys pretrain-matcher --out runs/matcher              # generates its own data
    cp runs/matcher/text_matcher.pt raysys/viewsam/weights/text_matcher_synth.pt
    # or, in a training config (raysys train --config cfg.json):
    # {"model": {"candidate_generator": {"attribute_net": "embedded",
    #                                    "text_matcher": "runs/matcher/text_matcher.pt"}}}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from raysys.commands.options import add_pretrain_options, generated_data


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_pretrain_options(p, "6004-6027 (16 frames each)", 6000)
    p.add_argument("--heldout", type=Path, nargs="*", metavar="DATA",
                   help="generated benchmarks to check it on (default: OUT/data_6100, made "
                        "with the held-out seed; none with --data)")
    p.add_argument("--attribute-net", default="embedded",
                   help="the attribute net whose readings it learns from (default: embedded); "
                        "the Candidate Generator must use the same one")
    p.add_argument("--text-encoder", default="minilm",
                   help="the frozen text encoder of the ViewSAM it serves (default: minilm)")


def run(args: argparse.Namespace) -> int:
    from raysys.training.pretrain_matcher import (
        EXPRESSIONS_PER_SCENE,
        HELDOUT_SEED,
        PRETRAIN_FRAMES,
        PRETRAIN_SEEDS,
        pretrain_text_matcher,
    )

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data, heldout = args.data, args.heldout
    if not data:
        data = generated_data(args.out, PRETRAIN_SEEDS, "pretrain-matcher",
                              frames=PRETRAIN_FRAMES, expressions=EXPRESSIONS_PER_SCENE)
        if heldout is None:
            heldout = generated_data(args.out, (HELDOUT_SEED,), "pretrain-matcher",
                                     expressions=EXPRESSIONS_PER_SCENE)
    meta = pretrain_text_matcher(args.out, data, heldout, steps=args.steps, seed=args.seed,
                                 device=args.device, attribute_net=args.attribute_net,
                                 text_encoder=args.text_encoder)
    print(json.dumps(meta, indent=2))
    print(f"[pretrain-matcher] weights: {args.out / 'text_matcher.pt'}")
    return 0
