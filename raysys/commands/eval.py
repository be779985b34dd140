"""``raysys eval``: CVR-IDF1 / CVR-MA of a CRTrack prediction folder against its GT.

Prints a table per scene and All; ``--json`` also writes every number (atomically).
Malformed input ends with a one-line ``file:line: problem`` message and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from raysys.io.crtrack import atomic_write_text

EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, type=Path, metavar="GT_DIR",
                        help="GT root holding <Scene>_<expression>/gt/View<k>.txt, e.g. "
                        "In-domain/gt/sorted_gt_test_In-domain")
    parser.add_argument("--pred", required=True, type=Path, metavar="PRED_DIR",
                        help="prediction root holding <Scene>_<expression>/View<k>.txt")
    parser.add_argument("--json", type=Path, metavar="OUT",
                        help="also write all results (per expression, scene, All) as JSON")
    parser.add_argument("--missing-as-empty", action="store_true",
                        help="evaluate a missing prediction file as empty instead of failing")
    parser.add_argument("--per-expression", action="store_true",
                        help="also print one row per expression")
    parser.add_argument("--progress", action="store_true",
                        help="print one line per evaluated expression on stderr")


def run(args: argparse.Namespace) -> int:
    from raysys.eval import evaluate  # imported here so `raysys --help` stays fast

    try:
        result = evaluate(args.gt, args.pred, missing_as_empty=args.missing_as_empty,
                          progress=args.progress)
    except ValueError as e:  # CRTrackFormatError (file:line: ...) is a ValueError
        print(f"raysys eval: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result.missing_predictions:
        print(f"raysys eval: {len(result.missing_predictions)} prediction file(s) missing, "
              f"evaluated as empty (first: {result.missing_predictions[0]})", file=sys.stderr)
    print(result.format_table(per_expression=args.per_expression))
    if args.json is not None:
        try:
            atomic_write_text(args.json, json.dumps(result.to_json(), indent=1) + "\n")
        except OSError as e:
            print(f"raysys eval: error: cannot write {args.json}: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
