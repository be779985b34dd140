"""Grouping trajectory descriptions into referring expressions (paper §3.2).

Trajectories whose description embeddings have cosine similarity >= a threshold are
linked; each connected component is one expression whose text is the component's most
frequent description (ties: the one closest to the component's mean embedding) and whose
ids are all its trajectories. One expression can thus refer to many objects.

Full descriptions are specific ("a man in a gray cap, green coat and black trousers"), and
rarely shared. A describer can also give the more general sentences a description implies
("a man wearing a green coat"); each becomes one expression over every trajectory it fits
(merged with a specific expression of the same text), like CRTrack's general expressions,
which refer to several people.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from raysys.types import Expression

__all__ = ["group_descriptions"]


def group_descriptions(scene: str, gids: list[int], texts: list[str], emb: np.ndarray,
                       threshold: float, general: list[list[str]] | None = None
                       ) -> list[Expression]:
    """Group one scene's trajectory descriptions into expressions.

    Args:
        gids: global id per trajectory; texts: its description; emb: (n, d) unit rows.
        threshold: cosine similarity at or above which two descriptions are linked.
        general: per trajectory, the more general sentences its description implies
            (None or empty lists: none); each sentence is one expression of all the
            trajectories that have it.
    """
    n = len(gids)
    assert len(texts) == n and emb.shape[0] == n, (len(texts), emb.shape, n)
    if general is not None and len(general) != n:
        raise ValueError(f"{len(general)} lists of general sentences for {n} trajectories")
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sim = emb @ emb.T if n else np.zeros((0, 0))
    for i in range(n):
        for j in range(i + 1, n):
            if texts[i] == texts[j] or sim[i, j] >= threshold:
                parent[find(j)] = find(i)
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(find(i), []).append(i)
    out = []
    for members in comps.values():
        counts = Counter(texts[i] for i in members)
        top = max(counts.values())
        cands = sorted(t for t, c in counts.items() if c == top)
        if len(cands) > 1:
            mean = emb[members].mean(axis=0)
            score = {texts[i]: float(emb[i] @ mean) for i in members}
            cands.sort(key=lambda t: -score[t])
        out.append(Expression(scene, _safe(cands[0]), tuple(gids[i] for i in members)))
    by_text: dict[str, list[int]] = {}
    for e in out:  # a specific text that is also a general one: one expression
        by_text.setdefault(e.text, []).extend(e.global_ids)
    for i, sentences in enumerate(general or []):
        for t in sentences or []:
            ids = by_text.setdefault(_safe(t), [])
            if gids[i] not in ids:
                ids.append(gids[i])
    return sorted((Expression(scene, t, tuple(ids)) for t, ids in by_text.items()),
                  key=lambda e: e.text)


def _safe(text: str) -> str:
    """Expression text usable as a CRTrack folder name."""
    t = " ".join(text.replace("/", " ").replace("\x00", " ").split())
    return t or "An object"
