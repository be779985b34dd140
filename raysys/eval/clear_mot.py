"""CLEAR-MOT (MOTA and its counts) under the MOT16 rules of the official devkit.

Bernardin & Stiefelhagen, "Evaluating Multiple Object Tracking Performance: The CLEAR MOT
Metrics" (2008), as implemented by the MOTChallenge ``matlab_devkit`` (``clearMOTMex``) that
the CRTrack benchmark uses. Input format: :mod:`raysys.eval.pairs`.

Frame by frame, over frames ``1 .. max GT frame`` (callers drop the other rows, see
:mod:`raysys.eval.crtrack_eval`):

1. a GT id matched in the previous frame keeps its prediction if both are present and
   their IoU >= threshold;
2. the remaining GT ids and predictions are matched by a minimum-cost assignment on
   ``1 - IoU`` where only pairs with IoU >= threshold are allowed (most matches first,
   then least cost); exact ties are broken by a tiny extra cost that grows with the pair's
   row-major index in the frame's (GT id x prediction id) matrix, ids sorted ascending
   (so, e.g., of two equally good GT ids the lower one gets the prediction);
3. an ID switch is counted when a matched GT id was present in the previous frame and its
   prediction differs from the one it was last matched to (in any earlier frame).

``FP = predictions - TP``, ``FN = GT - TP``, ``MOTA = 100 (1 - (FN + FP + IDSW) / n_gt)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from raysys.eval.pairs import check_rows, matching_pairs

__all__ = ["ClearMOTCounts", "clear_mot", "mota"]

_FORBIDDEN = 1e6  # cost of a pair below the IoU threshold: any valid match is cheaper
_TIE_SPAN = 1e-9  # largest tie-break cost of one pair: far below real gaps in 1 - IoU


@dataclass(frozen=True)
class ClearMOTCounts:
    """Counts of one sequence (combine sequences by adding counts, see :meth:`__add__`)."""

    tp: int  # matched GT rows
    fp: int  # prediction rows not matched
    fn: int  # GT rows not matched
    idsw: int  # identity switches
    n_gt: int  # GT rows
    n_pred: int  # prediction rows

    def __add__(self, other: ClearMOTCounts) -> ClearMOTCounts:
        return ClearMOTCounts(*(a + b for a, b in zip(_astuple(self), _astuple(other),
                                                      strict=True)))

    @property
    def mota(self) -> float:
        """MOTA in percent (unclipped, can be negative)."""
        return mota(self.fn, self.fp, self.idsw, self.n_gt)


def _astuple(c: ClearMOTCounts) -> tuple[int, ...]:
    return (c.tp, c.fp, c.fn, c.idsw, c.n_gt, c.n_pred)


def mota(fn: int, fp: int, idsw: int, n_gt: int) -> float:
    """``100 * (1 - (FN + FP + IDSW) / n_gt)``.

    With no GT rows the devkit divides by zero; here an empty GT scores 100 when nothing was
    predicted (nothing to find, nothing wrong) and ``-inf`` otherwise (clipped by callers).
    """
    errors = fn + fp + idsw
    if n_gt == 0:
        return 100.0 if errors == 0 else float("-inf")
    return 100.0 * (1.0 - errors / n_gt)


def clear_mot(gt: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> ClearMOTCounts:
    """CLEAR-MOT counts of one sequence.

    Args:
        gt: (n, 6) GT rows ``frame, id, left, top, width, height``.
        pred: (m, 6) prediction rows, same columns.
        threshold: IoU a pair needs to be matched (0.5 in MOT16).

    Returns:
        :class:`ClearMOTCounts`.
    """
    gt, pred = check_rows(gt, "gt"), check_rows(pred, "pred")
    n_gt, n_pred = len(gt), len(pred)
    gi, pj, iou = matching_pairs(gt, pred, threshold)
    if gi.size == 0:
        return ClearMOTCounts(0, n_pred, n_gt, 0, n_gt, n_pred)
    # ids -> ranks, so that sorting ranks sorts ids
    g_rank = np.unique(gt[:, 1], return_inverse=True)[1]
    p_rank = np.unique(pred[:, 1], return_inverse=True)[1]
    frames = gt[gi, 0].astype(np.int64)
    order = np.lexsort((p_rank[pj], g_rank[gi], frames))
    frames, g, p = frames[order], g_rank[gi][order], p_rank[pj][order]
    cost = 1.0 - iou[order]
    gt_present = set(zip(gt[:, 0].astype(np.int64).tolist(), g_rank.tolist(), strict=True))
    tp, idsw = _match_frames(frames, g, p, cost, gt_present)
    return ClearMOTCounts(tp, n_pred - tp, n_gt - tp, idsw, n_gt, n_pred)


def _match_frames(frames, g, p, cost, gt_present) -> tuple[int, int]:
    """Run steps 1-3 of the module docstring over the frames that have candidate pairs.

    Args:
        frames, g, p, cost: (k,) candidate pairs (IoU >= threshold) sorted by frame:
            frame, GT id rank, prediction id rank, ``1 - IoU``.
        gt_present: set of ``(frame, GT id rank)`` of every GT row.

    Returns:
        (TP, IDSW).
    """
    last_frame: dict[int, int] = {}  # GT id -> last frame it was matched in
    last_pred: dict[int, int] = {}  # GT id -> prediction id it was last matched to
    tp = idsw = 0
    bounds = np.flatnonzero(np.diff(frames)) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(frames)]
    fl, gl, pl, cl = frames.tolist(), g.tolist(), p.tolist(), cost.tolist()
    for s, e in zip(starts, ends, strict=True):
        f = fl[s]
        if e - s == 1:  # the common case: a single valid pair is matched whatever the rules
            matched = {gl[s]: pl[s]}
        else:
            edges = list(zip(gl[s:e], pl[s:e], cl[s:e], strict=True))
            matched = _match_one_frame(f, edges, last_frame, last_pred)
        tp += len(matched)
        for gk, pk in matched.items():
            if gk in last_pred and (f - 1, gk) in gt_present and last_pred[gk] != pk:
                idsw += 1
            last_frame[gk] = f
            last_pred[gk] = pk
    return tp, idsw


def _match_one_frame(f, edges, last_frame, last_pred) -> dict[int, int]:
    """Matches of one frame: continued ones first, then a min-cost assignment of the rest.

    Args:
        f: the frame.
        edges: list of (GT id rank, prediction id rank, cost) candidate pairs of frame f.
        last_frame, last_pred: matching state from earlier frames (read only).

    Returns:
        ``{GT id rank: prediction id rank}``.
    """
    matched: dict[int, int] = {}
    for gk, pk, _ in edges:  # step 1: a match of frame f-1 continues if still valid
        if last_frame.get(gk) == f - 1 and last_pred[gk] == pk:
            matched[gk] = pk
    used = set(matched.values())
    rest = [(gk, pk, c) for gk, pk, c in edges if gk not in matched and pk not in used]
    if len(rest) == 1:
        matched[rest[0][0]] = rest[0][1]
    elif rest:
        rows = sorted({gk for gk, _, _ in rest})
        cols = sorted({pk for _, pk, _ in rest})
        ri = {v: i for i, v in enumerate(rows)}
        ci = {v: i for i, v in enumerate(cols)}
        m = np.full((len(rows), len(cols)), _FORBIDDEN)  # (GT ids, prediction ids)
        tie = _TIE_SPAN / m.size
        for gk, pk, c in rest:
            i, j = ri[gk], ci[pk]
            m[i, j] = c + tie * (i * len(cols) + j)
        r, c = linear_sum_assignment(m)
        for i, j in zip(r.tolist(), c.tolist(), strict=True):
            if m[i, j] < _FORBIDDEN:
                matched[rows[i]] = cols[j]
    return matched
