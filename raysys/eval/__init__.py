"""Tracking metrics as pure functions over arrays, and the CRTrack evaluation built on them.

Metric input format, used throughout: one sequence = ``gt`` (n, 6) and ``pred`` (m, 6)
float arrays ``frame, id, left, top, width, height`` (see :mod:`raysys.eval.pairs`).
Per-sequence counts are combined into benchmark scores in a separate step
(:func:`raysys.eval.crtrack_eval.aggregate`).
"""

from raysys.eval.clear_mot import ClearMOTCounts, clear_mot, mota
from raysys.eval.crtrack_eval import (
    EvalResult,
    ExpressionResult,
    aggregate,
    build_sequences,
    evaluate,
    evaluate_expression,
    round_significant,
)
from raysys.eval.identity import IdentityCounts, identity, idf1

__all__ = [
    "ClearMOTCounts",
    "EvalResult",
    "ExpressionResult",
    "IdentityCounts",
    "aggregate",
    "build_sequences",
    "clear_mot",
    "evaluate",
    "evaluate_expression",
    "identity",
    "idf1",
    "mota",
    "round_significant",
]
