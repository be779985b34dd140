"""``raysys track``: cross-view referring tracking of a dataset split with a trained ViewSAM.

Examples::

    raysys track --model RUN/final --data DATA --out PRED
    raysys eval --gt DATA/In-domain/gt/sorted_gt_test_In-domain --pred PRED
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from raysys.commands import read_json_option


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True,
                   help="ViewSAM checkpoint folder (a `raysys train` run's final/)")
    p.add_argument("--data", type=Path, required=True, help="dataset root (raysys synth layout)")
    p.add_argument("--domain", choices=["In-domain", "Cross-domain"], default="In-domain")
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--out", type=Path, required=True, help="prediction folder (CRTrack layout)")
    p.add_argument("--config", type=Path, help="JSON file of TrackConfig fields to override")
    p.add_argument("--clip-frames", type=int, help="T, frame sets per clip (default 8)")
    p.add_argument("--actors", type=int, default=2, help="tracking actors (default 2)")
    p.add_argument("--actor-cpus", type=float, default=1.0, help="CPUs per actor (fractions ok)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per actor")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")


def build_config(args: argparse.Namespace):
    from raysys.tracking import TrackConfig

    d = read_json_option(args.config, "--config")
    names = {f.name for f in dataclasses.fields(TrackConfig)}
    bad = sorted(set(d) - names)
    if bad:
        raise ValueError(f"unknown TrackConfig fields {bad}; valid: {sorted(names)}")
    if args.clip_frames is not None:
        d["clip_frames"] = args.clip_frames
    return TrackConfig(**d)


def run(args: argparse.Namespace) -> int:
    from raysys.io.dataset import DatasetLayout
    from raysys.runtime import init_ray
    from raysys.tracking.run import track_split

    try:
        cfg = build_config(args)
        layout = DatasetLayout(args.data, args.domain, args.split)
        init_ray(args.address)
        res = track_split(args.model, layout, args.out, cfg, actors=args.actors,
                          actor_cpus=args.actor_cpus, use_gpu=args.use_gpu)
    except (ValueError, FileNotFoundError) as e:
        print(f"raysys track: error: {e}", file=sys.stderr)
        return 2
    print(f"tracked {res.units - res.skipped} of {res.units} expressions "
          f"({res.skipped} already done): {res.frames} frame sets in {res.seconds:.1f} s "
          f"({res.fps:.2f} frame sets/s)")
    print(f"predictions: {res.pred_root}\nscore them: raysys eval --gt {layout.gt_root} "
          f"--pred {res.pred_root}")
    return 0
