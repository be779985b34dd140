"""``raysys quality``: score Stage 1 pseudo labels per stage against the GT (Table 4)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", type=Path, required=True, help="output of `raysys label`")
    p.add_argument("--data", type=Path, required=True, help="dataset root with GT")
    p.add_argument("--domain", default="In-domain", choices=["In-domain", "Cross-domain"])
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--category", default="person")


def run(args: argparse.Namespace) -> int:
    from raysys.io.dataset import DatasetLayout
    from raysys.labeling.quality import format_quality, quality_report

    try:
        rep = quality_report(args.labels, DatasetLayout(args.data, args.domain, args.split),
                             args.category)
    except (ValueError, FileNotFoundError) as e:
        print(f"raysys quality: error: {e}", file=sys.stderr)
        return 2
    print(format_quality(rep))
    print(f"quality: {Path(args.labels) / 'quality.json'}")
    return 0
