"""``raysys train``: Stage 2, train ViewSAM on Stage 1's pseudo labels with Ray Train.

Weak supervision (the default) is enforced: the driver and every Ray worker of the job
refuse to open files under the dataset's GT folders (:mod:`raysys.labeling.guard`).
``--supervision full --data DIR`` trains on GT instead: the fully supervised comparison
row only.

Examples::

    raysys train --labels LABELS --out RUN --quick --workers 2 --cpus-per-worker 0.5
    raysys train --labels LABELS --out RUN --workers 4 --use-gpu \\
        --sam2-config configs/sam2.1/sam2.1_hiera_b+.yaml --sam2-checkpoint sam2.1_b+.pt
    raysys train --supervision full --data DATA --out RUN_FULL --quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raysys.commands import read_json_option


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", type=Path, help="Stage 1 output folder (raysys label --out)")
    p.add_argument("--out", type=Path, required=True, help="run folder (resumable)")
    p.add_argument("--config", type=Path, help="JSON file of TrainConfig fields to override")
    p.add_argument("--quick", action="store_true",
                   help="the scaled-down CPU schedule (T=4, 128 px, 2 epochs per stage)")
    p.add_argument("--workers", type=int, default=1, help="DDP workers (default 1)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0,
                   help="CPUs per worker; fractions fit several workers on few cores")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per worker (NCCL)")
    p.add_argument("--sam2-config", help="SAM2 YAML (default: the embedded tiny config)")
    p.add_argument("--sam2-checkpoint", help="local SAM2 .pt: the base is frozen, as in the paper")
    p.add_argument("--text-encoder", help="minilm (default) | hf:DIR | random:ARCH")
    p.add_argument("--supervision", choices=["weak", "full"], default="weak",
                   help="weak: pseudo labels only (default); full: GT, comparison row only")
    p.add_argument("--data", type=Path,
                   help="dataset root (default: the one named in the labels' config.json)")
    p.add_argument("--domain", choices=["In-domain", "Cross-domain"], help="default: labels'")
    p.add_argument("--split", choices=["train", "test"], help="default: the labels' split")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")


def build_config(args: argparse.Namespace):
    """``TrainConfig`` from ``--quick``, then ``--config`` JSON, then the flags."""
    from raysys.training.config import TrainConfig, from_dict, quick_config

    base = quick_config() if args.quick else TrainConfig()
    d = read_json_option(args.config, "--config")
    d["supervision"] = args.supervision
    for name in ("sam2_config", "sam2_checkpoint", "text_encoder"):
        v = getattr(args, name)
        if v is not None:
            d[name] = v
    if d.get("sam2_checkpoint"):
        from raysys.viewsam.base import resolve_sam2_checkpoint

        resolve_sam2_checkpoint(d["sam2_checkpoint"])  # a clear error before Ray starts
    return from_dict(TrainConfig, d, base)


def _setup(args: argparse.Namespace):
    """Config, clip source and Ray (under the weak-supervision guard) for a run."""
    from raysys.labeling import guard
    from raysys.runtime import init_ray
    from raysys.training.data import open_source

    if args.supervision == "weak" and args.labels is None:
        raise ValueError("--labels DIR is required (a `raysys label` output); "
                         "or --supervision full --data DIR")
    if args.labels is not None and not args.labels.is_dir():
        raise FileNotFoundError(f"--labels {args.labels} is not a folder: pass the --out "
                                "folder of `raysys label`")
    cfg = build_config(args)
    source = open_source(args.supervision, args.labels, args.data, args.domain, args.split)
    env = None
    if args.supervision == "weak":
        forbidden = source.layout.ground_truth_dirs()
        guard.install(forbidden)
        env = guard.runtime_env(forbidden)
    init_ray(args.address, runtime_env=env)
    import ray

    # one line per epoch comes from the trainer; Ray Data's bars would bury it
    ray.data.DataContext.get_current().enable_progress_bars = False
    return cfg, source


def run(args: argparse.Namespace) -> int:
    from raysys.training.trainer import TrainResources, run_training

    try:
        if args.workers < 1 or args.cpus_per_worker <= 0:
            raise ValueError("--workers must be >= 1 and --cpus-per-worker > 0")
        cfg, source = _setup(args)
        res = run_training(source, args.out, cfg, TrainResources(
            workers=args.workers, cpus_per_worker=args.cpus_per_worker, use_gpu=args.use_gpu))
    except (ValueError, FileNotFoundError, PermissionError) as e:
        print(f"raysys train: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # Ray Train gave up (max_failures exceeded) or a worker bug
        print(f"raysys train: training failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"\n[raysys train] {len(res.history)} epochs, {res.samples} clips/epoch, "
          f"{res.seconds:.1f} s -> {res.out}")
    print(f"  {'epoch':>5} {'stage':<20} {'loss':>9} {'seconds':>8}")
    for r in res.history:
        print(f"  {r['epoch']:>5} {r['stage']:<20} {r['loss']:>9.4f} {r['seconds']:>8.1f}")
    print(f"  final model: {res.final}\n  metrics: {res.out / 'metrics.json'}\n"
          f"  curves: {res.out / 'loss_curves.png'}")
    return 0
