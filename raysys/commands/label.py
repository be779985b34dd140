"""``raysys label``: Stage 1 pseudo labels from raw videos + category labels (on Ray).

Weak supervision is enforced, not only promised: the driver and every Ray worker of the
job refuse to open files under the dataset's GT folders (:mod:`raysys.guard`).
``--report`` scores the result against the GT in a separate process (``raysys quality``).
The settings are :class:`raysys.labeling.config.LabelConfig` (defaults, then
``--config FILE``, then the flags); the actor pool is a resource setting.

Examples::

    raysys label --data data/synth --out runs/labels
    raysys label --data data/synth --split test --out runs/labels_test --report
    raysys label --data DATA --out LABELS --tracker sam3 --reid osnet --device cuda \\
        --actors 4 --actor-cpus 2 --config label.yaml
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from raysys.commands.options import (
    add_address,
    add_allow_missing_views,
    add_config,
    add_data,
    add_domain,
    add_out,
    add_split,
    build_config,
    require_dataset,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p)
    add_out(p, "output folder (resumable)", metavar="LABELS")
    add_domain(p)
    add_split(p, "train")
    add_config(p, "LabelConfig")
    p.add_argument("--tracker", help="concept tracker backend (classical | sam3)")
    p.add_argument("--reid", help="ReID backend (stripes | osnet)")
    p.add_argument("--reid-checkpoint",
                   help="local OSNet weights file, or embedded (the shipped osnet_x0_25)")
    p.add_argument("--describer", help="describer backend (colours | attributes | hf-vlm | vllm)")
    p.add_argument("--text", help="text embedder (minilm | hf:DIR | random:ARCH)")
    p.add_argument("--device", help="device of the models in the actors (cpu | cuda; cuda "
                   "gives each actor a GPU)")
    p.add_argument("--actors", type=int, default=1, help="Stage 1 actor pool size (default 1)")
    p.add_argument("--actor-cpus", type=float, default=0.5,
                   help="CPUs per actor; fractions fit several on few cores (default 0.5)")
    add_allow_missing_views(p)
    add_address(p)
    p.add_argument("--report", action="store_true",
                   help="then score each stage against the GT (runs `raysys quality`)")


def build_label_config(args: argparse.Namespace):
    """``LabelConfig``: defaults, then ``--config``, then the flags given."""
    from raysys.labeling.config import LabelConfig

    over = {name: getattr(args, name)
            for name in ("tracker", "reid", "describer", "text", "device")}
    cfg = build_config(LabelConfig, args.config, over)
    if args.reid_checkpoint:  # merged into the file's reid_options, not replacing them
        import dataclasses

        opts = {**cfg.reid_options, "checkpoint": args.reid_checkpoint}
        cfg = dataclasses.replace(cfg, reid_options=opts)
    return cfg


def build_resources(args: argparse.Namespace, cfg):
    """The Stage 1 actor pool and Ray cluster of the options (a GPU per actor when the
    models run on CUDA)."""
    from raysys.runtime import Resources

    return Resources(address=args.address, label_actors=args.actors,
                     label_actor_cpus=args.actor_cpus, use_gpu=cfg.device != "cpu")


def run(args: argparse.Namespace) -> int:
    from raysys.io.dataset import DatasetLayout
    from raysys.labeling.job import label_job

    cfg = build_label_config(args)
    resources = build_resources(args, cfg)
    require_dataset(args.data)
    res = label_job(DatasetLayout(args.data, args.domain, args.split), args.out, cfg,
                    resources, allow_missing_views=args.allow_missing_views)
    s = res.summary
    print(f"\n[raysys label] {s['scenes']} scenes, {s['units']} units, "
          f"{s['trajectories']} trajectories, {s['expressions']} expressions -> {res.out}")
    if s["redone_scenes"]:
        print(f"  the dataset changed since the last run: scenes {', '.join(s['redone_scenes'])}"
              " labelled again")
    for k, v in s["timings"].items():
        fps = s["fps"].get(k.replace("_s", ""))
        print(f"  {k:24s} {v:8.1f} s   {fps or 0:8.1f} frames/s")
    if args.report:  # GT is read there: a process without the guard
        cmd = [sys.executable, "-m", "raysys", "quality", "--labels", str(args.out),
               "--data", str(args.data), "--domain", args.domain, "--split", args.split]
        return subprocess.call(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return 0
