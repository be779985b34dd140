"""``raysys quality``: score Stage 1 pseudo labels per stage against the GT (Table 4).

It reads GT, so it never runs under the weak-supervision guard (``raysys label --report``
runs it in a process of its own).

Examples::

    raysys quality --labels runs/labels --data data/synth --split train
    raysys quality --labels runs/labels_test --data data/synth --json quality.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from raysys.commands.options import (
    add_data,
    add_domain,
    add_json,
    add_labels,
    add_split,
    require_dataset,
    require_dir,
    write_json,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_labels(p, required=True)
    add_data(p, help="dataset root with GT (the one the labels were made from)")
    add_domain(p)
    add_split(p, "test")
    p.add_argument("--category", default="person", help="object category (default person)")
    add_json(p, "also write the scores as JSON to PATH ('-': stdout); LABELS/quality.json "
                "is always written")


def run(args: argparse.Namespace) -> int:
    from raysys.io.dataset import DatasetLayout
    from raysys.labeling.quality import format_quality, quality_report

    require_dir(args.labels, "--labels", "pass the --out folder of `raysys label`")
    require_dataset(args.data)
    rep = quality_report(args.labels, DatasetLayout(args.data, args.domain, args.split),
                         args.category)
    print(format_quality(rep))
    print(f"quality: {Path(args.labels) / 'quality.json'}")
    if args.json is not None:
        write_json(args.json, rep)
    return 0
