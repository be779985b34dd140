"""ROC AUC of scores against binary labels: how often a positive outranks a negative.

One implementation for every ranking figure of the project (the report's referring
diagnostics, the text matcher's pre-training check): the rank-sum (Mann-Whitney) formula,
tied scores given their mean rank (a tie counts half), O(n log n).
"""

from __future__ import annotations

import numpy as np

__all__ = ["roc_auc"]


def roc_auc(scores, labels) -> float:
    """ROC AUC of ``scores`` (n,) against ``labels`` (n,) (true / > 0.5: positive); NaN
    without both classes."""
    from scipy.stats import rankdata

    y = np.asarray(labels, float) > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    r = rankdata(np.asarray(scores, float))
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
