"""``raysys stats``: what makes language matter in a benchmark split, from its GT only.

People per scene, referred people per expression, expressions per scene, the share of
people referred at all, views, frames, box height, visible fraction, and the "everyone,
true ids" reference (every referred person of the scene for every expression, scored with
the project's evaluator). Works on a user's CRTrack copy (GT only, no images needed) and on
a generated benchmark.

Examples::

    raysys stats --data ../shared/crtrack --domain In-domain --split test
    raysys stats --data data/synth --split train --json stats.json
"""

from __future__ import annotations

import argparse

from raysys.commands.options import (
    add_data,
    add_domain,
    add_json,
    add_split,
    require_dir,
    write_json,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p, help="dataset root in the CRTrack layout (a `raysys synth --out` folder, or "
                     "CRTrack)")
    add_domain(p)
    add_split(p, "test")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    from raysys.eval.stats import format_stats, split_stats
    from raysys.io.dataset import DatasetLayout

    require_dir(args.data, "--data", "pass a dataset root (a `raysys synth --out` folder)")
    st = split_stats(DatasetLayout(args.data, args.domain, args.split))
    print(format_stats(st))
    if args.json is not None:
        write_json(args.json, st.to_json())
    return 0
