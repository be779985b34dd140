"""Same-frame GT/prediction pairs and their IoU, shared by CLEAR-MOT and the identity metrics.

Input format (used by every metric in :mod:`raysys.eval`): one *sequence* is a pair of float
arrays ``gt`` (n, 6) and ``pred`` (m, 6), columns ``frame, id, left, top, width, height``.
Frames and ids hold integers; a ``(frame, id)`` pair appears at most once per array.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_rows", "iou_xywh", "iou_matrix_xyxy", "matching_pairs"]


def check_rows(rows: np.ndarray, what: str) -> np.ndarray:
    """Validate one side of a sequence and return it as a float64 (n, 6) array.

    Args:
        rows: (n, 6) ``frame, id, left, top, width, height``; (0, k) is accepted as empty.
        what: name used in error messages (``"gt"`` or ``"pred"``).

    Returns:
        The rows as a contiguous float64 (n, 6) array.

    Raises:
        ValueError: wrong shape, non-integer frame/id, non-finite boxes or a duplicate
            ``(frame, id)``.
    """
    a = np.asarray(rows, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 6))
    if a.ndim != 2 or a.shape[1] != 6:
        raise ValueError(f"{what} rows must have shape (n, 6) = frame, id, left, top, width, "
                         f"height; got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} rows contain NaN or infinite values")
    key = a[:, :2]
    if np.any(key != np.rint(key)):
        raise ValueError(f"{what} frame and id columns must hold integers")
    k = key.astype(np.int64)
    order = np.lexsort((k[:, 1], k[:, 0]))
    ks = k[order]
    dup = np.flatnonzero(np.all(ks[1:] == ks[:-1], axis=1))
    if dup.size:
        f, i = ks[dup[0]]
        raise ValueError(f"{what} rows: duplicate (frame, id) = ({f}, {i})")
    return np.ascontiguousarray(a)


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (k, 4) arrays of ``left, top, width, height`` boxes.

    Computed as the devkit's ``boxiou`` does (no +1 pixel convention); a zero union
    gives IoU 0.

    Returns:
        (k,) float64 IoU values in [0, 1].
    """
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.maximum(0.0, np.minimum(ax2, bx2) - np.maximum(a[:, 0], b[:, 0]))
    ih = np.maximum(0.0, np.minimum(ay2, by2) - np.maximum(a[:, 1], b[:, 1]))
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, 0.0)


def matching_pairs(
    gt: np.ndarray, pred: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (GT row, prediction row) pairs in the same frame whose IoU is >= ``threshold``.

    Vectorised: every GT row is paired with the prediction rows of its frame (found by
    binary search over the predictions sorted by frame), then the IoUs are computed at once.

    Args:
        gt: (n, 6) checked GT rows (see module docstring).
        pred: (m, 6) checked prediction rows.
        threshold: minimum IoU of a pair.

    Returns:
        ``(gi, pj, iou)``: (k,) GT row indices, (k,) prediction row indices, (k,) IoUs,
        ordered by GT row.
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if len(gt) == 0 or len(pred) == 0:
        return empty
    pf = pred[:, 0]
    po = np.argsort(pf, kind="stable")
    ps = pf[po]
    lo = np.searchsorted(ps, gt[:, 0], side="left")
    cnt = np.searchsorted(ps, gt[:, 0], side="right") - lo  # (n,) predictions in that frame
    total = int(cnt.sum())
    if total == 0:
        return empty
    gi = np.repeat(np.arange(len(gt)), cnt)
    within = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    pj = po[np.repeat(lo, cnt) + within]
    iou = iou_xywh(gt[gi, 2:6], pred[pj, 2:6])
    keep = iou >= threshold
    return gi[keep], pj[keep], iou[keep]


def iou_matrix_xyxy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (n, 4) with every box of ``b`` (m, 4), ``x1, y1, x2, y2``:
    (n, m); a zero union gives 0."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
