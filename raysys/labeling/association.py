"""Affinity-guided cross-view association (ViewSAM paper, §3.2).

Each single-view tracklet i has an embedding e_i, the L2-normalised mean of its frame
embeddings (Eq. 1). For every anchor tracklet and every *other* view, the candidate with
the highest cosine affinity is kept if it reaches ``threshold``; one candidate may be kept
by several anchors (duplicates allowed). The matched sets are then resolved into global
identities: matched pairs are merged greedily in order of affinity (union-find), refusing
any merge that would put two tracklets of one view that co-exist in time under one id
(a person cannot be twice in one image).

Inputs used throughout (n tracklets of one scene):
* ``views``: (n,) view name per tracklet;
* ``emb``: (n, d) L2-normalised tracklet embeddings;
* ``spans``: list of n frame arrays (sorted ints), used for the co-existence constraint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AssociationConfig", "affinity_matches", "resolve_identities", "associate"]


@dataclass(frozen=True)
class AssociationConfig:
    """Cross-view association settings."""

    threshold: float = 0.5  # minimum cosine affinity for a cross-view candidate
    max_shared_frames: int = 0  # same-view tracklets sharing more frames than this conflict
    merge_same_view: bool = True  # let one view's disjoint fragments join via other views


def affinity_matches(
    views: np.ndarray, emb: np.ndarray, threshold: float
) -> list[list[tuple[int, float]]]:
    """Per anchor, the best candidate in each other view above ``threshold``.

    Returns:
        matches[i] = [(j, cos_ij), ...], at most one j per view other than views[i].
    """
    views = np.asarray(views)
    emb = np.asarray(emb, dtype=np.float64)
    assert emb.ndim == 2 and emb.shape[0] == views.shape[0], (emb.shape, views.shape)
    aff = emb @ emb.T  # (n, n) cosine, rows are unit vectors
    out: list[list[tuple[int, float]]] = []
    for i in range(len(views)):
        row = []
        for u in np.unique(views):
            if u == views[i]:
                continue
            cand = np.flatnonzero(views == u)
            j = int(cand[np.argmax(aff[i, cand])])
            if aff[i, j] >= threshold:
                row.append((j, float(aff[i, j])))
        out.append(row)
    return out


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))
        self.members = [{i} for i in range(n)]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra] |= self.members[rb]
        self.members[rb] = set()


def _conflict(a: set[int], b: set[int], views: np.ndarray, spans: list[np.ndarray],
              max_shared: int, merge_same_view: bool) -> bool:
    for i in a:
        for j in b:
            if views[i] != views[j]:
                continue
            if not merge_same_view:
                return True
            shared = np.intersect1d(spans[i], spans[j], assume_unique=True).size
            if shared > max_shared:
                return True
    return False


def resolve_identities(
    matches: list[list[tuple[int, float]]],
    views: np.ndarray,
    spans: list[np.ndarray],
    cfg: AssociationConfig = AssociationConfig(),
) -> np.ndarray:
    """Turn (possibly duplicated, possibly contradictory) matched sets into global ids.

    Returns:
        (n,) int array of global ids 1..K, numbered in order of first tracklet.
    """
    views = np.asarray(views)
    n = len(views)
    edges = {}
    for i, row in enumerate(matches):
        for j, a in row:
            key = (min(i, j), max(i, j))
            edges[key] = max(a, edges.get(key, -np.inf))
    uf = _UnionFind(n)
    # strongest evidence first; ties broken by index so the result is deterministic
    for (i, j), _a in sorted(edges.items(), key=lambda kv: (-kv[1], kv[0])):
        ri, rj = uf.find(i), uf.find(j)
        if ri == rj:
            continue
        if _conflict(uf.members[ri], uf.members[rj], views, spans,
                     cfg.max_shared_frames, cfg.merge_same_view):
            continue
        uf.union(ri, rj)
    roots: dict[int, int] = {}
    gids = np.zeros(n, dtype=np.int64)
    for i in range(n):
        gids[i] = roots.setdefault(uf.find(i), len(roots) + 1)
    return gids


def associate(
    views: np.ndarray, emb: np.ndarray, spans: list[np.ndarray],
    cfg: AssociationConfig = AssociationConfig(),
) -> tuple[np.ndarray, list[list[tuple[int, float]]]]:
    """Affinity matches then identity resolution; returns (global ids, matches)."""
    matches = affinity_matches(views, emb, cfg.threshold)
    return resolve_identities(matches, views, spans, cfg), matches
