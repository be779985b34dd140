"""Cross-view identity clustering of the zero-shot baselines (paper Table 1, "SAM3" row).

The baselines have no association step of their own: single-view tracklets are grouped
into global identities by average-linkage agglomerative clustering of their ReID
embeddings, with a cannot-link between two tracklets of one view that co-exist in time
(a person cannot be twice in one image). Unlike Stage 1's affinity-guided association
(:mod:`raysys.labeling.association`: top-1 candidate per view, then greedy merges), every
pair of clusters competes here, and clusters are compared by their mean pairwise cosine.

Inputs (n tracklets of one scene and category):
* ``views``: (n,) view name per tracklet;
* ``emb``: (n, d) L2-normalised tracklet embeddings (Eq. 1);
* ``spans``: n sorted frame arrays, for the cannot-link.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cannot_link", "cluster_tracklets"]


def cannot_link(views: np.ndarray, spans: list[np.ndarray]) -> np.ndarray:
    """(n, n) bool: True where two tracklets of one view share at least one frame."""
    views = np.asarray(views)
    n = len(views)
    assert len(spans) == n, (len(spans), n)
    out = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(i + 1, n):
            if views[i] == views[j] and np.intersect1d(spans[i], spans[j]).size:
                out[i, j] = out[j, i] = True
    return out


def cluster_tracklets(views: np.ndarray, emb: np.ndarray, spans: list[np.ndarray],
                      threshold: float) -> np.ndarray:
    """Average-linkage agglomerative clustering with a same-view cannot-link.

    Repeatedly merges the two clusters with the highest mean pairwise cosine, as long as it
    is >= ``threshold`` and no cannot-link joins them. Ties go to the lowest index pair, so
    the result is deterministic.

    Args:
        views: (n,) view per tracklet.
        emb: (n, d) unit rows.
        spans: n frame arrays.
        threshold: minimum average cosine for a merge.

    Returns:
        (n,) int64 global ids 1..K, numbered in order of first tracklet.
    """
    views = np.asarray(views)
    emb = np.asarray(emb, dtype=np.float64)
    n = len(views)
    assert emb.ndim == 2 and emb.shape[0] == n, (emb.shape, n)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sim = emb @ emb.T  # (n, n) cluster-to-cluster average cosine, updated on merges
    np.fill_diagonal(sim, -np.inf)
    blocked = cannot_link(views, spans)
    size = np.ones(n)
    alive = np.ones(n, dtype=bool)
    label = np.arange(n)
    while True:
        cand = np.where(blocked | ~alive[:, None] | ~alive[None, :], -np.inf, sim)
        k = int(np.argmax(cand))  # first maximum in row-major order: lowest (i, j)
        i, j = divmod(k, n)
        if not np.isfinite(cand[i, j]) or cand[i, j] < threshold:
            break
        a, b = min(i, j), max(i, j)
        # UPGMA update: size-weighted mean of the two clusters' average cosines
        row = (size[a] * sim[a] + size[b] * sim[b]) / (size[a] + size[b])
        sim[a], sim[:, a] = row, row
        sim[a, a] = -np.inf
        blocked[a] |= blocked[b]
        blocked[:, a] = blocked[a]
        size[a] += size[b]
        alive[b] = False
        label[label == b] = a
    gids = np.zeros(n, dtype=np.int64)
    first: dict[int, int] = {}
    for t in range(n):
        gids[t] = first.setdefault(int(label[t]), len(first) + 1)
    return gids
