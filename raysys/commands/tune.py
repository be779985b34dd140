"""``raysys tune``: Ray Tune sweeps of λ_dyn, α, δ and λ (Eq. 3, 4, 11, 12/23) on a
weak-safe validation CVR-IDF1: the pseudo labels of held-out frames, never GT.

Each trial trains ViewSAM with Ray Train (a ``TorchTrainer`` inside the trial); ASHA stops
poor trials once their parameters have acted. The space is a YAML file (``--space``,
``tune/space.yaml``); the training settings are ``raysys train``'s (``--quick``,
``--config``). Outputs in ``--out``: ``results.parquet``, ``best_config.json`` (for
``raysys train --config``), ``metric_vs_params.png``, ``trial_curves.png``, ``summary.md``.

Examples::

    raysys tune --labels LABELS --out SWEEP --quick --trials 3 --max-concurrent 2
    raysys tune --labels LABELS --out SWEEP --quick --resume     # continue a killed sweep
    raysys tune --labels LABELS --out SWEEP --space tune/space.yaml --trials 12 \\
        --workers 2 --use-gpu --search optuna
    raysys tune --labels LABELS --out SWEEP_ORACLE --quick --val-gt DATA   # oracle: GT
    raysys train --labels LABELS --out RUN --config SWEEP/best_config.json
"""

from __future__ import annotations

import argparse

from raysys.commands.options import add_address, add_config, add_labels, add_out, require_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_labels(p, required=True)
    add_out(p, "sweep folder (resumable with --resume)", metavar="SWEEP")
    p.add_argument("--space", type=str, metavar="FILE",
                   help="search space YAML (default: λ_dyn, α, δ, λ uniform in [0, 1], as "
                        "tune/space.yaml)")
    add_config(p, "TrainConfig")
    p.add_argument("--quick", action="store_true",
                   help="raysys train's CPU schedule, and a small validation (2 expressions, "
                        "8 held-out frames per scene)")
    p.add_argument("--trials", type=int, default=12, help="trials (default 12)")
    p.add_argument("--search", choices=["random", "optuna"], default="random",
                   help="search algorithm (default random; optuna needs `pip install optuna`)")
    p.add_argument("--max-concurrent", type=int, default=1, metavar="K",
                   help="trials at once (default 1)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out (Tuner.restore); finished trials stay")
    p.add_argument("--val-gt", type=str, metavar="DATA",
                   help="validate on this dataset's GT instead of held-out pseudo labels: an "
                        "ORACLE sweep (the fully supervised setting); outputs say so")
    p.add_argument("--val-frac", type=float, default=0.25,
                   help="held-out tail of each scene's frames (default 0.25)")
    p.add_argument("--val-scenes", type=str, metavar="S1,S2",
                   help="hold out these whole scenes instead")
    p.add_argument("--workers", type=int, default=1, help="DDP workers per trial (default 1)")
    p.add_argument("--cpus-per-worker", type=float, default=0.5,
                   help="CPUs per worker (default 0.5; fractions fit trials on few cores)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--sam2-config", help="SAM2 YAML (default: the embedded tiny config)")
    p.add_argument("--sam2-checkpoint", help="local SAM2 .pt (frozen base)")
    p.add_argument("--text-encoder", help="minilm (default) | hf:DIR | random:ARCH")
    p.set_defaults(supervision=None)
    add_address(p)


def build_sweep(args: argparse.Namespace):
    """(TrainConfig, search space, SweepConfig, Resources) of the options."""
    from raysys.commands.train import build_train_config
    from raysys.errors import UserError
    from raysys.runtime import Resources
    from raysys.tune.space import DEFAULT_SPACE, load_space, parse_space
    from raysys.tune.sweep import SweepConfig

    cfg = build_train_config(args)
    stages = tuple(s.name for s in cfg.stages)
    space = load_space(args.space, stages) if args.space else parse_space(DEFAULT_SPACE, stages)
    if args.val_gt:
        require_dir(args.val_gt, "--val-gt", "pass a dataset root whose GT validates")
    if not 0.0 < args.val_frac < 1.0:
        raise UserError(f"--val-frac must be in (0, 1), got {args.val_frac}")
    quick = dict(val_expressions=2, val_frames=8, calib_clips=4) if args.quick else {}
    sweep = SweepConfig(trials=args.trials, search=args.search,
                        max_concurrent=args.max_concurrent, val_frac=args.val_frac,
                        val_scenes=tuple(s for s in (args.val_scenes or "").split(",") if s),
                        **quick)
    res = Resources(address=args.address, workers=args.workers,
                    cpus_per_worker=args.cpus_per_worker, use_gpu=args.use_gpu)
    return cfg, space, sweep, res


def print_summary(info: dict, out) -> None:
    from raysys.tune.validation import METRIC

    kind = "ORACLE (GT validation)" if info["oracle"] else "weak-safe (pseudo-label validation)"
    print(f"\n[raysys tune] {info['trials']} trials, {kind}: {info['status']}")
    best = info.get("best")
    if best:
        print(f"  best {METRIC} {best['best']:.2f} (trial {best['trial_id']})")
    print(f"  {out}/summary.md, results.parquet, best_config.json, *.png")


def run(args: argparse.Namespace) -> int:
    from raysys.tune.job import tune_job

    cfg, space, sweep, res = build_sweep(args)
    info = tune_job(args.labels, args.out, cfg, space, sweep, res, val_gt=args.val_gt,
                    resume=args.resume)
    print_summary(info, args.out)
    return 0
