"""``raysys track``: cross-view referring tracking of a dataset split with a trained ViewSAM.

The settings are :class:`raysys.tracking.TrackConfig` (defaults, then ``--config FILE``,
then the flags); the actors are a resource setting.

Examples::

    raysys track --model RUN/final --data DATA --out PRED
    raysys track --model RUN/final --data DATA --domain Cross-domain --out PRED_CROSS \\
        --actors 4 --actor-cpus 2 --config track.yaml     # e.g. {refer_threshold: 0.4}
    raysys eval --gt DATA/In-domain/gt/sorted_gt_test_In-domain --pred PRED
"""

from __future__ import annotations

import argparse

from raysys.commands.options import (
    add_address,
    add_allow_missing_views,
    add_allow_partial,
    add_config,
    add_data,
    add_domain,
    add_model,
    add_out,
    add_split,
    build_config,
    require_dataset,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, required=True)
    add_data(p)
    add_domain(p)
    add_split(p, "test")
    add_out(p, "prediction folder (CRTrack layout; resumable)", metavar="PRED")
    add_config(p, "TrackConfig")
    p.add_argument("--clip-frames", type=int, help="T, frame sets per clip (default 8)")
    p.add_argument("--actors", type=int, default=2, help="tracking actors (default 2)")
    p.add_argument("--actor-cpus", type=float, default=1.0,
                   help="CPUs per actor, fractions ok (default 1)")
    p.add_argument("--expressions-per-pass", type=int, default=16,
                   help="expressions of a scene tracked together in one pass over its "
                        "frames (frames decoded and the frozen trunk run once for them "
                        "all; default 16; fewer: less memory, more actors busy)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per actor")
    add_allow_missing_views(p)
    add_allow_partial(p)
    add_address(p)


def build_track_config(args: argparse.Namespace):
    """``TrackConfig``: defaults, then ``--config``, then the flags given."""
    from raysys.tracking.config import TrackConfig

    return build_config(TrackConfig, args.config, {"clip_frames": args.clip_frames})


def build_resources(args: argparse.Namespace):
    """The tracking actors and Ray cluster of the options."""
    from raysys.runtime import Resources

    return Resources(address=args.address, track_actors=args.actors,
                     track_actor_cpus=args.actor_cpus, use_gpu=args.use_gpu,
                     track_expressions=args.expressions_per_pass)


def run(args: argparse.Namespace) -> int:
    from raysys.io.dataset import DatasetLayout
    from raysys.tracking.job import track_job

    cfg = build_track_config(args)
    resources = build_resources(args)
    require_dataset(args.data)
    layout = DatasetLayout(args.data, args.domain, args.split)
    res = track_job(args.model, layout, args.out, cfg, resources,
                    allow_missing_views=args.allow_missing_views,
                    allow_partial=args.allow_partial)
    print(f"tracked {res.units - res.skipped} of {res.units} expressions in {res.passes} "
          f"passes over the scenes ({res.skipped} already done): {res.frames} "
          f"expression-frame sets in {res.seconds:.1f} s ({res.fps:.2f}/s)")
    if res.redone_scenes:
        print(f"the frames changed since the last run: scenes {', '.join(res.redone_scenes)} "
              "tracked again")
    print(f"predictions: {res.pred_root}\nscore them: raysys eval --gt {layout.gt_root} "
          f"--pred {res.pred_root}")
    return 0
