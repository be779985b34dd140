"""``raysys train``: Stage 2, train ViewSAM on Stage 1's pseudo labels with Ray Train.

Weak supervision (the default) is enforced: the driver and every Ray worker of the job
refuse to open files under the dataset's GT folders (:mod:`raysys.guard`).
``--supervision full --data DIR`` trains on GT instead: the fully supervised comparison
row only. The settings are :class:`raysys.training.config.TrainConfig`: the paper's
schedule (or ``--quick``'s), then ``--config FILE``, then the flags.

Examples::

    raysys train --labels LABELS --out RUN --quick --workers 2 --cpus-per-worker 0.5
    raysys train --labels LABELS --out RUN --workers 4 --use-gpu \\
        --sam2-config configs/sam2.1/sam2.1_hiera_b+.yaml --sam2-checkpoint sam2.1_b+.pt
    raysys train --supervision full --data DATA --out RUN_FULL --quick
"""

from __future__ import annotations

import argparse

from raysys.commands.options import (
    add_address,
    add_config,
    add_data,
    add_domain,
    add_labels,
    add_out,
    add_split,
    build_config,
    require_dataset,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_labels(p, help="Stage 1 output folder (a `raysys label --out` folder); required for "
                       "weak supervision")
    add_out(p, "run folder (resumable)", metavar="RUN")
    add_config(p, "TrainConfig")
    p.add_argument("--quick", action="store_true",
                   help="the scaled-down CPU schedule (T=4, 128 px, 2 epochs per stage)")
    p.add_argument("--workers", type=int, default=1, help="DDP workers (default 1)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0,
                   help="CPUs per worker; fractions fit several workers on few cores")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per worker (NCCL)")
    p.add_argument("--sam2-config", help="SAM2 YAML (default: the embedded tiny config)")
    p.add_argument("--sam2-checkpoint", help="local SAM2 .pt: the base is frozen, as in the paper")
    p.add_argument("--text-encoder", help="minilm (default) | hf:DIR | random:ARCH")
    p.add_argument("--supervision", choices=["weak", "full"],
                   help="weak: pseudo labels only (default); full: GT, comparison row only")
    add_data(p, required=False,
             help="dataset root (default: the one named in the labels' config.json)")
    add_domain(p, None, "dataset domain (default: the labels')")
    add_split(p, None, "dataset split (default: the labels')")
    add_address(p)


def build_train_config(args: argparse.Namespace):
    """``TrainConfig``: the paper's schedule (or ``--quick``'s), then ``--config``, then
    the flags given."""
    from raysys.training.config import TrainConfig, quick_config

    base = quick_config() if args.quick else TrainConfig()
    over = {name: getattr(args, name)
            for name in ("supervision", "sam2_config", "sam2_checkpoint", "text_encoder")}
    cfg = build_config(TrainConfig, args.config, over, base)
    # clear errors before Ray starts: a missing, unsafe or wrong-kind SAM2 file (read with
    # weights_only=True), a SAM2 YAML naming a _target_ outside the allowlist
    from raysys.viewsam.base import resolve_sam2_checkpoint, resolve_sam2_config
    from raysys.viewsam.safe_load import read_sam2_file
    from raysys.viewsam.sam2_yaml import read_sam2_yaml

    if cfg.sam2_checkpoint and cfg.sam2_checkpoint != base.sam2_checkpoint:
        read_sam2_file(resolve_sam2_checkpoint(cfg.sam2_checkpoint))
    if cfg.sam2_config:
        read_sam2_yaml(resolve_sam2_config(cfg.sam2_config))
    return cfg


def build_resources(args: argparse.Namespace):
    """The training workers and Ray cluster of the options."""
    from raysys.runtime import Resources

    return Resources(address=args.address, workers=args.workers,
                     cpus_per_worker=args.cpus_per_worker, use_gpu=args.use_gpu)


def run(args: argparse.Namespace) -> int:
    from raysys.training.job import train_job

    resources = build_resources(args)
    cfg = build_train_config(args)
    require_dataset(args.data)
    res = train_job(args.out, cfg, resources, labels=args.labels, data=args.data,
                    domain=args.domain, split=args.split)
    print(f"\n[raysys train] {len(res.history)} epochs, {res.samples} clips/epoch, "
          f"{res.seconds:.1f} s -> {res.out}")
    print(f"  {'epoch':>5} {'stage':<20} {'loss':>9} {'seconds':>8}")
    for r in res.history:
        print(f"  {r['epoch']:>5} {r['stage']:<20} {r['loss']:>9.4f} {r['seconds']:>8.1f}")
    print(f"  final model: {res.final}\n  metrics: {res.out / 'metrics.json'}\n"
          f"  curves: {res.out / 'loss_curves.png'}")
    return 0
