"""``raysys quality``: score Stage 1 pseudo labels per stage against the GT (Table 4).

It reads GT, so it never runs under the weak-supervision guard (``raysys label --report``
runs it in a process of its own). The labels must come from ``--data`` as it is now (their
``config.json`` names their dataset, domain and split, and the frames' fingerprint then):
scores against another dataset's GT are refused, not printed.

Examples::

    raysys quality --labels runs/labels --data data/synth --split train
    raysys quality --labels runs/labels_test --data data/synth --json quality.json
"""

from __future__ import annotations

import argparse

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
    add_domain(p, None, "dataset domain (default: the labels')")
    add_split(p, None, "dataset split (default: the labels')")
    p.add_argument("--category", default="person", help="object category (default person)")
    add_json(p, "also write the scores as JSON to PATH ('-': stdout); LABELS/quality.json "
                "is always written")


def run(args: argparse.Namespace) -> int:
    from raysys.io.dataset import DatasetLayout
    from raysys.labeling.quality import format_quality, quality_report
    from raysys.labeling.record import read_label_record

    require_dir(args.labels, "--labels", "pass the --out folder of `raysys label`")
    require_dataset(args.data)
    made = read_label_record(args.labels)  # the labels' split, unless given
    layout = DatasetLayout(args.data, args.domain or made.get("domain", "In-domain"),
                           args.split or made.get("split", "train"))
    rep = quality_report(args.labels, layout, args.category)
    print(format_quality(rep))
    print(f"quality: {args.labels / 'quality.json'}")
    if args.json is not None:
        write_json(args.json, rep)
    return 0
