"""``raysys synth``: generate the synthetic multi-camera CRMOT benchmark (CRTrack layout).

The settings are :class:`raysys.synth.SynthConfig`: its defaults, then ``--config FILE``
(JSON or YAML), then the flags given. The same config and seed give identical files.

Examples::

    raysys synth --out data/synth --seed 0
    raysys synth --out data/synth --seed 0 --scenes 2 --views 3 --frames 100 \\
        --size 640x360 --people 10 --splits train,test --domains in,cross
    raysys synth --out data/big --config synth.yaml    # e.g. {scenes: 4, frames: 120}
"""

from __future__ import annotations

import argparse
import json

from raysys.commands.options import (
    add_config,
    add_out,
    build_config,
    positive_float,
    require_out_dir,
)
from raysys.synth.config import DOMAIN_ALIASES, SynthConfig

_DEFAULT = SynthConfig()


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x360, got {text!r}")
    w, h = int(parts[0]), int(parts[1])
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"width and height must be >= 32, got {text!r}")
    return w, h


def _splits(text: str) -> tuple[str, ...]:
    out = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in out if s not in ("train", "test")]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"splits are a comma list of train,test; got {text!r}")
    return out


def _domains(text: str) -> tuple[str, ...]:
    out = []
    for s in (s.strip() for s in text.split(",") if s.strip()):
        if s.lower() not in DOMAIN_ALIASES:
            raise argparse.ArgumentTypeError(
                f"domains are a comma list of in,cross (or In-domain,Cross-domain); got {s!r}")
        out.append(DOMAIN_ALIASES[s.lower()])
    if not out:
        raise argparse.ArgumentTypeError("no domain given")
    return tuple(out)


_INT_OPTIONS = (  # (flag, SynthConfig field, help)
    ("--seed", "seed", "master seed"),
    ("--scenes", "scenes", "scenes per domain and split"),
    ("--views", "views", "cameras per In-domain scene"),
    ("--cross-views", "cross_views", "cameras per Cross-domain scene"),
    ("--frames", "frames", "frames per view"),
    ("--people", "people", "people per scene"),
    ("--cars", "cars", "cars per scene"),
    ("--bicycles", "bicycles", "parked bicycles per scene"),
    ("--expressions", "expressions", "referring expressions per scene, at most"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = _DEFAULT
    add_out(p, "output folder (new, empty, or holding a dataset of the same config)")
    add_config(p, "SynthConfig")
    for flag, name, help_ in _INT_OPTIONS:
        p.add_argument(flag, type=int, help=f"{help_} (default {getattr(d, name)})")
    p.add_argument("--size", type=_size, metavar="WxH",
                   help=f"frame size (default {d.width}x{d.height})")
    p.add_argument("--fps", type=positive_float,
                   help=f"frame rate, sets the motion per frame (default {d.fps})")
    p.add_argument("--splits", type=_splits, metavar="LIST",
                   help="comma list of train,test (default: both)")
    p.add_argument("--domains", type=_domains, metavar="LIST",
                   help="comma list of in,cross (default: both)")
    p.add_argument("--allow-large", action="store_true",
                   help="lift the size limits (frames above 4096 px a side, 10,000 frames a "
                        "view, 200,000 images in all, ...) that catch a typo before it fills "
                        "the disk")


def run(args: argparse.Namespace) -> int:
    from raysys.synth.generate import generate

    over = {name: getattr(args, name) for _, name, _ in _INT_OPTIONS}
    over.update(fps=args.fps, splits=args.splits, domains=args.domains)
    if args.size is not None:
        over.update(width=args.size[0], height=args.size[1])
    cfg = build_config(SynthConfig, args.config, over)
    require_out_dir(args.out)
    result = generate(cfg, args.out, allow_large=args.allow_large)
    print(json.dumps({k: result[k] for k in ("root", "rendered", "skipped")}))
    return 0
