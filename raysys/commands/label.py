"""``raysys label``: Stage 1 pseudo labels from raw videos + category labels (on Ray).

Weak supervision is enforced, not only promised: the driver and every Ray worker of the
job refuse to open files under the dataset's GT folders (:mod:`raysys.labeling.guard`).
``--report`` scores the result against the GT in a separate process (``raysys quality``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from raysys.commands import read_json_option


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset root (raysys synth --out)")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    p.add_argument("--domain", default="In-domain", choices=["In-domain", "Cross-domain"])
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--config", type=Path, help="JSON file of LabelConfig fields to override")
    p.add_argument("--tracker", help="concept tracker backend (classical | sam3)")
    p.add_argument("--reid", help="ReID backend (stripes | osnet)")
    p.add_argument("--reid-checkpoint", help="local OSNet weights file")
    p.add_argument("--describer", help="describer backend (colours | hf-vlm | vllm)")
    p.add_argument("--text", help="text embedder (minilm | hf:DIR | random:ARCH)")
    p.add_argument("--device", help="device of the models in the actors (cpu | cuda)")
    p.add_argument("--actors", type=int, help="tracking actor pool size")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--report", action="store_true",
                   help="then score each stage against the GT (runs `raysys quality`)")


def build_config(args: argparse.Namespace):
    from raysys.labeling.config import LabelConfig

    d = read_json_option(args.config, "--config")
    for name in ("tracker", "reid", "describer", "text", "device", "actors"):
        v = getattr(args, name)
        if v is not None:
            d[name] = v
    if args.reid_checkpoint:
        d.setdefault("reid_options", {})["checkpoint"] = args.reid_checkpoint
    if d.get("device", "cpu") != "cpu":
        d.setdefault("actor_gpus", 1.0)
    return LabelConfig.from_dict(d)


def run(args: argparse.Namespace) -> int:
    from raysys.io.dataset import DatasetLayout
    from raysys.labeling import guard
    from raysys.labeling.pipeline import run_labeling
    from raysys.runtime import init_ray

    try:
        cfg = build_config(args)
        layout = DatasetLayout(args.data, args.domain, args.split)
        forbidden = layout.ground_truth_dirs()
        guard.install(forbidden)
        init_ray(args.address, runtime_env=guard.runtime_env(forbidden))
        res = run_labeling(layout, args.out, cfg)
    except (ValueError, FileNotFoundError, PermissionError) as e:
        print(f"raysys label: error: {e}", file=sys.stderr)
        return 2
    s = res.summary
    print(f"\n[raysys label] {s['scenes']} scenes, {s['units']} units, "
          f"{s['trajectories']} trajectories, {s['expressions']} expressions -> {res.out}")
    for k, v in s["timings"].items():
        fps = s["fps"].get(k.replace("_s", ""))
        print(f"  {k:24s} {v:8.1f} s   {fps or 0:8.1f} frames/s")
    if args.report:
        cmd = [sys.executable, "-m", "raysys.cli", "quality", "--labels", str(args.out),
               "--data", str(args.data), "--domain", args.domain, "--split", args.split]
        return subprocess.call(cmd)
    return 0
