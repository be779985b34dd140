"""``raysys eval``: CVR-IDF1 / CVR-MA of a CRTrack prediction folder against its GT.

Prints a table per scene and All; ``--json PATH`` also writes every number (atomically).
Malformed input ends with a one-line ``file:line: problem`` message and exit code 2.

Examples::

    raysys eval --gt DATA/In-domain/gt/sorted_gt_test_In-domain --pred PRED
    raysys eval --gt GT --pred PRED --json scores.json --per-expression --missing-as-empty
"""

from __future__ import annotations

import argparse
import logging
import sys

from raysys.commands.options import add_json, location, write_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, type=location, metavar="GT_DIR",
                        help="GT root holding <Scene>_<expression>/gt/View<k>.txt, e.g. "
                        "In-domain/gt/sorted_gt_test_In-domain")
    parser.add_argument("--pred", required=True, type=location, metavar="PRED_DIR",
                        help="prediction root holding <Scene>_<expression>/View<k>.txt")
    add_json(parser, "also write all results (per expression, scene, All) as JSON to PATH")
    parser.add_argument("--missing-as-empty", action="store_true",
                        help="evaluate a missing prediction file as empty instead of failing")
    parser.add_argument("--per-expression", action="store_true",
                        help="also print one row per expression")
    parser.add_argument("--progress", action="store_true",
                        help="print one line per evaluated expression on stderr")


def run(args: argparse.Namespace) -> int:
    from raysys.eval import evaluate  # imported here so `raysys --help` stays fast

    # a malformed file raises CRTrackFormatError (a ValueError naming file:line)
    result = evaluate(args.gt, args.pred, missing_as_empty=args.missing_as_empty,
                      progress=args.progress)
    if result.missing_predictions:
        log.warning("raysys eval: %d prediction file(s) missing, evaluated as empty "
                    "(first: %s)", len(result.missing_predictions),
                    result.missing_predictions[0])
    print(result.format_table(per_expression=args.per_expression))
    if args.json is not None:
        write_json(args.json, result.to_json())
        if str(args.json) != "-":
            print(f"wrote {args.json}", file=sys.stderr)
    return 0
