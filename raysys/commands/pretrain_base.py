"""``raysys pretrain-base``: pre-train the tiny SAM2 base the way SAM2 is trained
(promptable video segmentation on generated scenes of its own seed) and export it as a
SAM2 ``.pt`` with ``metrics.json`` and ``MODEL_CARD.md``.

No Ray: one process (plus a process pool that renders the scenes) on ``--device``.
:mod:`raysys.training.pretrain_base` says what it learns from and why.

Examples::

    raysys pretrain-base --out runs/base --steps 200 --batch 2          # a CPU try
    raysys pretrain-base --out runs/base --device cuda --batch 64 --minutes 8
    cp runs/base/sam2_base.pt raysys/viewsam/weights/<file>.pt
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from raysys.commands.options import add_out
from raysys.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out(p, "output folder: sam2_base.pt, metrics.json, MODEL_CARD.md")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--use-gpu", action="store_true", help="same as --device cuda")
    p.add_argument("--image-size", type=int, default=256, help="model input side (256)")
    p.add_argument("--batch", type=int, default=8, help="clips per step (8)")
    p.add_argument("--steps", type=int, help="optimiser steps (budget)")
    p.add_argument("--minutes", type=float,
                   help="wall-clock training budget (with --steps: whichever ends first)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (5e-4)")
    p.add_argument("--seed", type=int,
                   help="master seed of the training scenes (default 1000, PRETRAIN_SEED)")
    p.add_argument("--scenes", type=int, default=48, help="training scenes to render (48)")
    p.add_argument("--data", type=Path,
                   help="train on this generated dataset's train split (both domains) "
                        "instead of rendering --scenes scenes")
    p.add_argument("--eval-scenes", type=int, default=4,
                   help="held-out scenes (test split of seed+1) for metrics.json (4)")
    p.add_argument("--eval-clips", type=int, default=64, help="held-out clips (64)")
    p.add_argument("--init", default="embedded",
                   help="initial weights: 'embedded' (default: the shipped base), a SAM2 .pt, "
                        "or none (random init)")
    p.add_argument("--clip-frames", type=int, default=8, help="frames per clip (8)")
    p.add_argument("--max-objects", type=int, default=6, help="objects per clip (6)")
    p.add_argument("--workers", type=int, default=0,
                   help="scene-rendering processes (default: every CPU)")
    p.add_argument("--log-every", type=int, default=20, help="steps between progress lines")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")


def config_from_args(args: argparse.Namespace):
    """The :class:`PretrainConfig` of parsed arguments."""
    from raysys.training.pretrain_base import PRETRAIN_SEED, PretrainConfig

    init = None if args.init in (None, "none", "random") else args.init
    seed = PRETRAIN_SEED if args.seed is None else args.seed
    return PretrainConfig(
        image_size=args.image_size, init=init, clip_frames=args.clip_frames,
        max_objects=args.max_objects, batch=args.batch,
        steps=args.steps, minutes=args.minutes, lr=args.lr, seed=seed, eval_seed=seed + 1,
        scenes=args.scenes, eval_scenes=args.eval_scenes, eval_clips=args.eval_clips,
        workers=args.workers, log_every=args.log_every, amp=not args.no_amp)


def resolve_device(name: str):
    """A torch device; a clear error when CUDA is asked for and absent."""
    import torch

    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available (torch {torch.__version__}, "
                         f"built for CUDA {torch.version.cuda}); use --device cpu")
    return dev


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from raysys.training.pretrain_base import load_dataset_scenes, run_pretraining

    if args.steps is None and args.minutes is None:
        raise UserError("give a budget: --steps N and/or --minutes M")
    cfg = config_from_args(args)
    dev = resolve_device("cuda" if args.use_gpu else args.device)
    train = None
    if args.data is not None:
        from raysys.io.dataset import DatasetLayout

        lays = [x for x in DatasetLayout.available(args.data) if x.split == "train"]
        if not lays:
            raise UserError(f"--data {args.data} has no train split (make one with "
                            "`raysys synth`)")
        train = [a for x in lays
                 for a in load_dataset_scenes(args.data, x.domain, "train", cfg.image_size)]
    argv = sys.argv[sys.argv.index("pretrain-base") + 1:] if "pretrain-base" in sys.argv else []
    cmd = " ".join(["raysys pretrain-base", shlex.join(argv)]).strip()
    m = run_pretraining(cfg, args.out, dev, command=cmd, train_scenes=train)
    ev = m["eval"].get("final") or {}
    print(f"[pretrain-base] {m['training']['steps']} steps, {m['training']['clips']} clips in "
          f"{m['training']['seconds']:.0f} s; held-out memory-only IoU {ev.get('memory_iou')}, "
          f"box-prompted IoU {ev.get('box_iou')}\n"
          f"  SAM2 base: {args.out / 'sam2_base.pt'}  (use it with --sam2-checkpoint PATH)")
    return 0
