"""``raysys synth``: generate the synthetic multi-camera CRMOT benchmark (CRTrack layout).

Example::

    raysys synth --out data/synth --seed 0 --scenes 2 --views 3 --frames 100 \\
        --size 640x360 --people 10 --splits train,test --domains in,cross
"""

from __future__ import annotations

import argparse
import json
import sys

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
    p.add_argument("--out", required=True, help="output folder (new, empty, or same config)")
    for flag, name, help_ in _INT_OPTIONS:
        p.add_argument(flag, type=int, default=getattr(d, name),
                       help=f"{help_} (default %(default)s)")
    p.add_argument("--size", type=_size, default=(d.width, d.height), metavar="WxH",
                   help=f"frame size (default {d.width}x{d.height})")
    p.add_argument("--fps", type=float, default=d.fps,
                   help="frame rate, sets the motion per frame (default %(default)s)")
    p.add_argument("--splits", type=_splits, default=d.splits, metavar="LIST",
                   help="comma list of train,test (default: both)")
    p.add_argument("--domains", type=_domains, default=d.domains, metavar="LIST",
                   help="comma list of in,cross (default: both)")


def run(args: argparse.Namespace) -> int:
    from raysys.synth.generate import DatasetConfigError, generate

    try:
        cfg = SynthConfig(
            seed=args.seed, scenes=args.scenes, views=args.views, cross_views=args.cross_views,
            frames=args.frames, width=args.size[0], height=args.size[1], fps=args.fps,
            people=args.people, cars=args.cars, bicycles=args.bicycles,
            expressions=args.expressions, splits=args.splits, domains=args.domains)
    except ValueError as e:
        print(f"raysys synth: error: {e}", file=sys.stderr)
        return 2
    try:
        result = generate(cfg, args.out)
    except DatasetConfigError as e:
        print(f"raysys synth: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: result[k] for k in ("root", "rendered", "skipped")}))
    return 0
