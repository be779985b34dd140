"""``raysys pretrain-base``: pre-train the embedded tiny SAM2 base (promptable video
segmentation on generated scenes of its own seed), then export it as a SAM2 ``.pt``.

The package ships the result as ``--sam2-checkpoint embedded``; this command is how it was
made (:mod:`raysys.training.pretrain` says what it learns from and why).

Examples::

    raysys pretrain-base --out runs/base                  # generates its own data
    cp runs/base/sam2_base.pt raysys/viewsam/weights/sam2_tiny128_synth.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="run folder (resumable)")
    p.add_argument("--data", type=Path,
                   help="generated data with a train split (default: OUT/data, made with "
                        "seed 1000: 3 In-domain train scenes)")
    p.add_argument("--epochs", type=int, help="epochs (default 3)")
    p.add_argument("--samples", type=int, help="clips per epoch (default 1000)")
    p.add_argument("--workers", type=int, default=2, help="DDP workers (default 2)")
    p.add_argument("--cpus-per-worker", type=float, default=0.85)
    p.add_argument("--use-gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from raysys.runtime import init_ray
    from raysys.training.data import open_source
    from raysys.training.pretrain import PRETRAIN_SEED, export_base, pretrain_config
    from raysys.training.trainer import TrainResources, run_training

    try:
        over: dict = {}
        if args.samples is not None:
            over["max_samples"] = args.samples
        cfg = pretrain_config(**over)
        if args.epochs is not None:
            cfg = dataclasses.replace(cfg, stages=(dataclasses.replace(
                cfg.stages[0], epochs=args.epochs),))
        data = args.data or args.out / "data"
        if args.data is None and not (data / "dataset.json").is_file():
            from raysys.synth import SynthConfig, generate

            print(f"[pretrain-base] generating pre-training scenes (seed {PRETRAIN_SEED}) "
                  f"-> {data}")
            generate(SynthConfig(seed=PRETRAIN_SEED, scenes=3, splits=("train",),
                                 domains=("In-domain",)), data)
        init_ray(args.address)
        import ray

        ray.data.DataContext.get_current().enable_progress_bars = False
        source = open_source("full", data=data, domain="In-domain", split="train")
        res = run_training(source, args.out / "train", cfg, TrainResources(
            workers=args.workers, cpus_per_worker=args.cpus_per_worker, use_gpu=args.use_gpu))
        pt = export_base(res.final, args.out / "sam2_base.pt")
    except (ValueError, FileNotFoundError) as e:
        print(f"raysys pretrain-base: error: {e}", file=sys.stderr)
        return 2
    print(f"[pretrain-base] {len(res.history)} epochs in {res.seconds:.0f} s; loss "
          f"{res.history[0]['loss']:.3f} -> {res.history[-1]['loss']:.3f}\n"
          f"  SAM2 base: {pt}  (use it with --sam2-checkpoint {pt})")
    return 0
