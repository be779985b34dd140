"""Identity measures (IDF1, IDP, IDR) of Ristani et al., "Performance Measures and a Data Set
for Multi-Target, Multi-Camera Tracking" (ECCV-W 2016), as in the devkit's ``IDmeasures``.

GT ids and prediction ids are matched one to one, globally over the sequence, so as to
minimise ``IDFP + IDFN``; an unmatched id costs its number of rows. A frame is a hit for a
(GT id, prediction id) pair when both are present and their IoU >= threshold. Minimising
``IDFP + IDFN = n_gt + n_pred - 2 IDTP`` is maximising ``IDTP``, the total hits of the
matched pairs, which is what :func:`identity` solves (the optimum value is unique even when
the assignment is not). Input format: :mod:`raysys.eval.pairs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from raysys.eval.pairs import check_rows, matching_pairs

__all__ = ["IdentityCounts", "identity", "idf1"]


@dataclass(frozen=True)
class IdentityCounts:
    """Identity counts of one sequence."""

    idtp: int  # GT rows covered by their matched prediction id
    idfp: int  # prediction rows not covered: n_pred - IDTP
    idfn: int  # GT rows not covered: n_gt - IDTP

    @property
    def idf1(self) -> float:
        """IDF1 in percent."""
        return idf1(self.idtp, self.idfp, self.idfn)


def idf1(idtp: int, idfp: int, idfn: int) -> float:
    """``100 * 2 IDTP / (2 IDTP + IDFP + IDFN)`` = ``100 * 2 IDTP / (n_gt + n_pred)``.

    Both sides empty scores 100 (nothing to find, nothing wrong).
    """
    denom = 2 * idtp + idfp + idfn
    return 100.0 if denom == 0 else 100.0 * 2 * idtp / denom


def identity(gt: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> IdentityCounts:
    """Identity counts of one sequence.

    Args:
        gt: (n, 6) GT rows ``frame, id, left, top, width, height``.
        pred: (m, 6) prediction rows, same columns.
        threshold: IoU a frame needs to count as a hit.

    Returns:
        :class:`IdentityCounts`.
    """
    gt, pred = check_rows(gt, "gt"), check_rows(pred, "pred")
    gi, pj, _ = matching_pairs(gt, pred, threshold)
    idtp = 0
    if gi.size:
        # only ids that share at least one hit can be matched usefully: a dense matrix over
        # those stays small even when the predictions carry many ids
        _, g = np.unique(gt[gi, 1], return_inverse=True)
        _, p = np.unique(pred[pj, 1], return_inverse=True)
        hits = np.zeros((g.max() + 1, p.max() + 1))  # (GT ids, prediction ids)
        np.add.at(hits, (g, p), 1.0)
        r, c = linear_sum_assignment(hits, maximize=True)
        idtp = int(hits[r, c].sum())
    return IdentityCounts(idtp, len(pred) - idtp, len(gt) - idtp)
