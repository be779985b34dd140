"""The CRTrack benchmark metrics CVR-IDF1 and CVR-MA (../shared/crtrack/PROTOCOL.md).

Each expression has one GT file and one prediction file per view. The views are joined into
two single-camera sequences and scored with the ordinary metrics:

* CVR-IDF1 = IDF1 (:mod:`raysys.eval.identity`) of the views played one after another;
* CVR-MA = MOTA (:mod:`raysys.eval.clear_mot`) of the views interleaved frame by frame, so
  an id that changes between views at the same instant is an ID switch; clipped at 0.

Scores are averaged without weights: a scene (text before the first ``_``) over its
expressions, "All" over all expressions (not over scenes).

Arrays per view are those of :mod:`raysys.io.crtrack`: GT (n, 6) ``frame, id, left, top,
width, height``; predictions (m, 6) ``frame, id, x1, y1, x2, y2``.

Protocol details that the In-domain reference values cannot tell apart (checked: each
variant reproduces all 40 expressions) and that follow PROTOCOL.md as written: the 1-row
file rule, the 5-significant-digit rounding, the CLEAR-MOT tie-break, and ``maxframe_m``
taken over the rows kept after the 1-row rule. Only boxes are rounded; frames and ids are
kept exact (dlmwrite would also round them past 99999, which no CRTrack sequence reaches).
Views are ordered numerically (View2 < View10), as "sorted name order" for up to 9 views.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from raysys.eval.clear_mot import ClearMOTCounts, clear_mot
from raysys.eval.identity import IdentityCounts, identity
from raysys.eval.pairs import check_rows
from raysys.io import crtrack, storage

__all__ = [
    "ExpressionResult",
    "EvalResult",
    "round_significant",
    "build_sequences",
    "evaluate_expression",
    "aggregate",
    "evaluate",
]

IOU_THRESHOLD = 0.5  # MOT16
SIGNIFICANT_DIGITS = 5  # the official pipeline passed boxes through MATLAB dlmwrite ('%.5g')


def round_significant(x: np.ndarray, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """Round to ``digits`` significant digits as ``printf('%.<digits>g')`` then parsing back.

    Decided on the exact binary value; exact halves go away from zero (MATLAB's printf).

    Args:
        x: float array, any shape.
        digits: significant digits to keep.

    Returns:
        float64 array of the same shape, each value the double nearest to its rounded decimal.
    """
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    nz = np.isfinite(x) & (x != 0)
    ax = np.abs(x[nz])
    k = digits - 1 - np.floor(np.log10(ax)).astype(np.int64)  # decimals to keep
    up = k >= 0
    scale = 10.0 ** np.abs(k)
    scaled = np.where(up, ax * scale, ax / scale)
    r = np.floor(scaled + 0.5)
    # x * 10**k may be off by an ulp: values that land near .5 are decided exactly
    near = np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
    for i in near.tolist():
        r[i] = float(Decimal(float(ax[i])).scaleb(int(k[i])).to_integral_value(ROUND_HALF_UP))
    out[nz] = np.sign(x[nz]) * np.where(up, r / scale, r * scale)
    return out


def _pred_xywh(pred: np.ndarray) -> np.ndarray:
    """(m, 6) xyxy prediction rows -> xywh, rounded as the official files were written."""
    p = pred.copy()
    p[:, 4] = pred[:, 4] - pred[:, 2]
    p[:, 5] = pred[:, 5] - pred[:, 3]
    p[:, 2:6] = round_significant(p[:, 2:6])
    return p


def _views(gt_by_view: Mapping[str, np.ndarray], pred_by_view: Mapping[str, np.ndarray]):
    """Per view, in evaluation order: (GT xywh, prediction xywh) with the 1-row rule applied."""
    out = []
    for v in sorted(gt_by_view, key=crtrack.view_sort_key):
        g = check_rows(gt_by_view[v], f"gt {v}")
        p = check_rows(pred_by_view.get(v, np.zeros((0, 6))), f"pred {v}")
        # The official reader drops a file with exactly one row (an artefact that the
        # published numbers include); 0-row files are empty anyway.
        g = g if len(g) > 1 else g[:0]
        p = _pred_xywh(p) if len(p) > 1 else p[:0]
        out.append((g, p))
    return out


def _with_frames(rows: np.ndarray, frames: np.ndarray) -> np.ndarray:
    r = rows.copy()
    r[:, 0] = frames
    return r


def _trim(gt: list[np.ndarray], pred: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate views; drop GT with frame < 1 and predictions outside 1..last GT frame."""
    g, p = np.concatenate(gt), np.concatenate(pred)
    g = g[g[:, 0] >= 1]
    last = g[:, 0].max() if len(g) else 0.0
    p = p[(p[:, 0] >= 1) & (p[:, 0] <= last)]
    return g, p


def build_sequences(
    gt_by_view: Mapping[str, np.ndarray], pred_by_view: Mapping[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The two cross-view sequences of one expression.

    Args:
        gt_by_view: ``{view: (n, 6) GT rows}``; its keys are the views evaluated, in
            ``View1, View2, ...`` order (numeric).
        pred_by_view: ``{view: (m, 6) xyxy prediction rows}``; a missing view is empty,
            views not in the GT are ignored.

    Returns:
        ``{"CVR-IDF1": (gt, pred), "CVR-MA": (gt, pred)}``, xywh rows (see
        :mod:`raysys.eval.pairs`). CVR-IDF1 plays the views one after another
        (``frame + off_m``, ``off_{m+1} = off_m + maxframe_m + 1``, maxframe_m over the GT
        and prediction rows kept for view m, 0 if none); CVR-MA interleaves them
        (``frame * V + m``).
    """
    views = _views(gt_by_view, pred_by_view)
    n_views = len(views)
    empty = np.zeros((0, 6))
    seq_gt, seq_pred, ma_gt, ma_pred = [empty], [empty], [empty], [empty]
    off = 0.0
    for m, (g, p) in enumerate(views):
        seq_gt.append(_with_frames(g, g[:, 0] + off))
        seq_pred.append(_with_frames(p, p[:, 0] + off))
        off += max(g[:, 0].max(initial=0.0), p[:, 0].max(initial=0.0)) + 1
        ma_gt.append(_with_frames(g, g[:, 0] * n_views + m))
        ma_pred.append(_with_frames(p, p[:, 0] * n_views + m))
    return {"CVR-IDF1": _trim(seq_gt, seq_pred), "CVR-MA": _trim(ma_gt, ma_pred)}


@dataclass(frozen=True)
class ExpressionResult:
    """Scores and raw counts of one expression.

    ``identity`` is computed on the CVR-IDF1 sequence, ``clear`` on the CVR-MA sequence;
    the two sequences hold the same GT rows but may keep different prediction rows.
    """

    identity: IdentityCounts
    clear: ClearMOTCounts

    @property
    def cvr_idf1(self) -> float:
        return self.identity.idf1

    @property
    def cvr_ma(self) -> float:
        """MOTA of the interleaved sequence, clipped at 0 as the benchmark does."""
        return max(0.0, self.clear.mota)

    def to_json(self) -> dict:
        i, c = self.identity, self.clear
        return {"CVR-IDF1": self.cvr_idf1, "CVR-MA": self.cvr_ma,
                "IDTP": i.idtp, "IDFP": i.idfp, "IDFN": i.idfn,
                "TP": c.tp, "FP": c.fp, "FN": c.fn, "IDSW": c.idsw, "MOTA": _json_float(c.mota),
                "n_gt": c.n_gt, "n_pred_idf1": i.idtp + i.idfp, "n_pred_ma": c.n_pred}


def _json_float(x: float) -> float | None:
    """JSON has no inf/nan: the unclipped MOTA of an empty GT is ``-inf`` -> null."""
    return float(x) if np.isfinite(x) else None


def evaluate_expression(
    gt_rows_by_view: Mapping[str, np.ndarray], pred_rows_by_view: Mapping[str, np.ndarray]
) -> ExpressionResult:
    """CVR-IDF1 and CVR-MA of one expression from in-memory arrays.

    Args:
        gt_rows_by_view: ``{view: (n, 6) frame, id, left, top, width, height}``.
        pred_rows_by_view: ``{view: (m, 6) frame, id, x1, y1, x2, y2}``; missing views are
            empty.

    Returns:
        :class:`ExpressionResult`.

    Raises:
        ValueError: malformed arrays (shape, non-integer frame/id, duplicate (frame, id)).
    """
    seqs = build_sequences(gt_rows_by_view, pred_rows_by_view)
    ids = identity(*seqs["CVR-IDF1"], threshold=IOU_THRESHOLD)
    clear = clear_mot(*seqs["CVR-MA"], threshold=IOU_THRESHOLD)
    return ExpressionResult(ids, clear)


def aggregate(results: Mapping[str, ExpressionResult]) -> dict:
    """Per-scene and overall unweighted means.

    Args:
        results: ``{"<Scene>_<expression>": ExpressionResult}``.

    Returns:
        ``{"All": {"CVR-IDF1", "CVR-MA", "n"}, "scenes": {scene: {...}}}``; All is the mean
        over expressions, not over scenes.
    """
    by_scene: dict[str, list[ExpressionResult]] = {}
    for name, r in results.items():
        by_scene.setdefault(crtrack.split_expression_name(name)[0], []).append(r)

    def mean(rs: list[ExpressionResult]) -> dict:
        return {"CVR-IDF1": float(np.mean([r.cvr_idf1 for r in rs])) if rs else None,
                "CVR-MA": float(np.mean([r.cvr_ma for r in rs])) if rs else None,
                "n": len(rs)}

    return {"All": mean(list(results.values())),
            "scenes": {s: mean(rs) for s, rs in sorted(by_scene.items())}}


@dataclass(frozen=True)
class EvalResult:
    """Results of a whole split: per expression, aggregated on demand."""

    expressions: dict[str, ExpressionResult]
    missing_predictions: tuple[str, ...] = field(default=())  # files evaluated as empty

    def to_json(self) -> dict:
        """``{"All", "scenes", "expressions", "missing_predictions"}`` (JSON-ready)."""
        agg = aggregate(self.expressions)
        return {"All": agg["All"], "scenes": agg["scenes"],
                "expressions": {k: r.to_json() for k, r in self.expressions.items()},
                "missing_predictions": len(self.missing_predictions)}

    def format_table(self, per_expression: bool = False) -> str:
        """Aligned text table: one row per scene and All (and per expression if asked)."""
        agg = aggregate(self.expressions)
        rows = [(s, v) for s, v in agg["scenes"].items()] + [("All", agg["All"])]
        lines = []
        if per_expression and self.expressions:
            width = max(len(k) for k in self.expressions)
            lines.append(f"{'expression':<{width}}  {'CVR-IDF1':>9}  {'CVR-MA':>9}")
            for k, r in self.expressions.items():
                lines.append(f"{k:<{width}}  {r.cvr_idf1:9.3f}  {r.cvr_ma:9.3f}")
            lines.append("")
        width = max(len("scene"), *(len(s) for s, _ in rows))
        lines.append(f"{'scene':<{width}}  {'n':>4}  {'CVR-IDF1':>9}  {'CVR-MA':>9}")
        for s, v in rows:
            idf1_, ma = (f"{x:9.3f}" if x is not None else f"{'-':>9}"
                         for x in (v["CVR-IDF1"], v["CVR-MA"]))
            lines.append(f"{s:<{width}}  {v['n']:4d}  {idf1_}  {ma}")
        return "\n".join(lines)


def _dense_ids(by_view: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows per view with each id replaced by its rank among the expression's ids (the same
    id gets the same rank in every view): exact in float64 whatever the ids (a file's ids
    are int64, and float64 holds integers exactly only up to 2^53). Order-preserving, so
    the scores and CLEAR-MOT's tie-break (ids sorted ascending) do not change."""
    views = list(by_view)
    ids = np.concatenate([by_view[v][1] for v in views] + [np.zeros(0, np.int64)])
    _, rank = np.unique(ids, return_inverse=True)
    out, k = {}, 0
    for v in views:
        rows = by_view[v][0].copy()
        rows[:, 1] = rank[k:k + len(rows)]
        out[v], k = rows, k + len(rows)
    return out


def evaluate(
    gt_root: str | os.PathLike,
    pred_root: str | os.PathLike,
    *,
    missing_as_empty: bool = False,
    progress: bool = False,
) -> EvalResult:
    """Evaluate every expression of a GT folder against a prediction folder.

    Args:
        gt_root: ``<gt_root>/<Scene>_<expression>/gt/View<k>.txt`` (e.g.
            ``In-domain/gt/sorted_gt_test_In-domain``); it decides what is evaluated.
        pred_root: ``<pred_root>/<Scene>_<expression>/View<k>.txt``.
        missing_as_empty: evaluate a missing prediction file as empty instead of failing.
        progress: print one line per expression on stderr.

    Returns:
        :class:`EvalResult`.

    Raises:
        CRTrackFormatError: malformed or missing file (names the file and line).
    """
    pred_root = storage.path(pred_root)  # a local folder or a storage URI
    if not pred_root.is_dir():
        raise crtrack.CRTrackFormatError(pred_root, "prediction folder not found")
    exprs = crtrack.list_expressions(gt_root)
    results: dict[str, ExpressionResult] = {}
    missing: list[str] = []
    from tqdm.auto import tqdm

    for e in tqdm(exprs, desc="evaluate", unit="expression", disable=not progress):
        gt = crtrack.read_expression_gt(gt_root, e.name, with_ids=True)
        pred, miss = crtrack.read_expression_pred(pred_root, e.name, list(gt), missing_as_empty,
                                                  with_ids=True)
        missing += miss
        results[e.name] = evaluate_expression(_dense_ids(gt), _dense_ids(pred))
    return EvalResult(results, tuple(missing))
