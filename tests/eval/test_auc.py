"""raysys.eval.auc: the project's one ROC AUC."""

import numpy as np
import pytest

from raysys.eval.auc import roc_auc


def test_roc_auc_matches_the_pairwise_count():
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 40).astype(float), rng.random(40) < 0.3
    pairs = (s[y][:, None] > s[~y][None]).mean() + 0.5 * (s[y][:, None] == s[~y][None]).mean()
    assert roc_auc(s, y) == pytest.approx(pairs)


def test_roc_auc_extremes_and_one_class():
    assert roc_auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert roc_auc([0.1, 0.2, 0.9], [1, 1, 0]) == 0.0
    assert np.isnan(roc_auc([0.3, 0.4], [1, 1]))
