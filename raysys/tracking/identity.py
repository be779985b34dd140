"""Global identities across views from CGCT embeddings (the assignment step of tracking).

Every identity keeps an L2-normalised prototype (an EMA of its tracks' clip-mean CGCT
embeddings). A new single-view track is assigned, per view, by a Hungarian assignment on
cosine similarity to the prototypes of identities that no other live track of that view
holds (one object cannot be twice in a view); a similarity below the threshold opens a new
identity. An identity keeps its id for good, so a person who leaves a view and comes back,
or who appears in another view, gets the id they had. With ``TrackConfig.reassign_ids``
every present track is assigned again at the end of each clip (the id it holds favoured),
so a single-view track that switched people takes the right id for the clips in which it
looks like the other person. The gallery is bounded: the least recently seen identities
are forgotten beyond ``max_identities``.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

__all__ = ["IdentityBank", "assign_clip_ids"]


class IdentityBank:
    """Prototypes of global identities, bounded in number.

    Args:
        threshold: min cosine similarity to join an identity.
        momentum: EMA weight of the old prototype when a track updates it.
        max_identities: identities remembered (least recently updated forgotten first).
    """

    def __init__(self, threshold: float, momentum: float, max_identities: int) -> None:
        self.threshold = threshold
        self.momentum = momentum
        self.max_identities = max_identities
        self.prototypes: OrderedDict[int, np.ndarray] = OrderedDict()
        self.next_id = 1

    def __len__(self) -> int:
        return len(self.prototypes)

    def new_identity(self, embedding: np.ndarray | None) -> int:
        gid = self.next_id
        self.next_id += 1
        if embedding is not None:
            self.prototypes[gid] = _unit(embedding)
            self._bound()
        return gid

    def assign(self, embeddings: list[np.ndarray | None], busy: set[int],
               held: list[int | None] | None = None, keep_bonus: float = 0.0) -> list[int]:
        """Global ids for tracks of one view (new ones, or all of the clip's).

        Args:
            embeddings: one clip-mean embedding per track (None: no embedding, e.g.
                the CGCT ablation; such a track always opens a new identity).
            busy: identities held by other live tracks of the same view (not eligible).
            held: the id each track holds already (None: a new track); ``keep_bonus`` is
                added to a track's cosine with the id it holds, so that an id changes only
                when another identity is clearly closer.
        """
        from scipy.optimize import linear_sum_assignment

        out: list[int | None] = [None] * len(embeddings)
        gids = [g for g in self.prototypes if g not in busy]
        rows = [i for i, e in enumerate(embeddings) if e is not None]
        if gids and rows:
            a = np.stack([_unit(embeddings[i]) for i in rows])  # (n, d)
            b = np.stack([self.prototypes[g] for g in gids])  # (m, d)
            sim = a @ b.T
            col = {g: c for c, g in enumerate(gids)}
            for r, i in enumerate(rows):
                if held is not None and held[i] in col:
                    sim[r, col[held[i]]] += keep_bonus
            ri, ci = linear_sum_assignment(-sim)
            for r, c in zip(ri, ci, strict=True):
                if sim[r, c] >= self.threshold:
                    out[rows[r]] = gids[c]
        return [g if g is not None else self.new_identity(embeddings[i])
                for i, g in enumerate(out)]

    def update(self, gid: int, embedding: np.ndarray) -> None:
        """Move identity ``gid``'s prototype towards a track's clip-mean embedding."""
        e = _unit(embedding)
        old = self.prototypes.pop(gid, None)
        self.prototypes[gid] = e if old is None else _unit(self.momentum * old +
                                                           (1 - self.momentum) * e)
        self._bound()

    def _bound(self) -> None:
        while len(self.prototypes) > self.max_identities:
            self.prototypes.popitem(last=False)


def assign_clip_ids(bank: IdentityBank, seen: dict, live: list[list], reassign: bool,
                    keep_bonus: float) -> None:
    """Global ids at the end of a clip for one expression's present tracks ``seen`` (track
    id -> track, each with ``view``, ``gid`` and this clip's CGCT embeddings ``emb``), its
    live tracks ``live[view]``; then the identity prototypes are updated and the clip's
    embeddings cleared. Per view, the new tracks are assigned; with ``reassign`` every
    present track with an embedding is (the id it holds favoured by ``keep_bonus``), so a
    track that followed another person through a crossing takes that person's id for the
    clip (the clip's results are emitted after this step)."""
    for k in range(len(live)):
        todo = [tr for tr in seen.values() if tr.view == k
                and (tr.gid is None or (reassign and tr.emb))]
        if not todo:
            continue
        mine = {id(tr) for tr in todo}
        busy = {tr.gid for tr in [*seen.values(), *live[k]]
                if tr.view == k and tr.gid is not None and id(tr) not in mine}
        embs = [np.mean(tr.emb, 0) if tr.emb else None for tr in todo]
        gids = bank.assign(embs, busy, [tr.gid for tr in todo], keep_bonus)
        for tr, gid in zip(todo, gids, strict=True):
            tr.gid = gid
    for tr in seen.values():
        if tr.emb:
            bank.update(tr.gid, np.mean(tr.emb, 0))
        tr.emb = []


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / max(float(np.linalg.norm(x)), 1e-8)
