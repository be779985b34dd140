"""Bi-directional re-prompting (ViewSAM paper, §3.2, Eq. 2).

For each identity found by cross-view association, the prototype is the normalised mean
of its member tracklets' embeddings (Eq. 2). In every view of the scene, the candidate
mask closest to the prototype is the seed: among the identity's own tracklet frames in a
view where it has tracklets, among all of the view's tracklet frames (if at least
``seed_threshold`` close) in a view where association found none. The concept tracker is
re-prompted with the seed's mask forward and backward in time. In a view with tracklets
the re-propagated track fills and extends the identity's fragments (frames it misses keep
the original boxes); in a view without, it is the identity's track there.

Then duplicate identities are resolved. "Tracked" boxes below are those of the
identity's own tracklets, the others were re-propagated:

1. identities whose tracked boxes coincide in a view, or one re-prompted onto the
   other's tracked boxes, are merged when they never clash. In a view the identity was
   seeded in (it had no tracklet there), its seed was taken from the other identity's
   tracklet by appearance alone, which association had judged not enough:
   ``seeded_merge="mutual"`` merges on such a landing only when each identity's seeded
   track lands on the other's tracked boxes ("never": not at all; "always", the default,
   like a landing in a tracked view). Two identities merge only when their prototypes
   (Eq. 2, of all their tracklets) are at least ``merge_similarity`` close: association
   judged them apart, so a landing alone is weak evidence;
2. re-propagated boxes left on another identity's box are dropped;
3. identities then seen in fewer than ``min_views`` views (capped at the scene's view
   count) have no cross-view support and are dropped, unless the tracker was confident
   of them (mean score of their tracked boxes >= ``keep_score``): a person whom neither
   association nor re-prompting found in another view is still a person, and dropping
   them costs every expression that refers to them (the measurement: docs/stage1.md).

The concept tracker is reached through ``repropagate(view, seed_frame, seed_mask,
direction) -> Tracklet`` so that a scene actor can call tracker actors back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from raysys.eval.pairs import iou_xywh
from raysys.types import MaskRLE, Tracklet

_log = logging.getLogger(__name__)

__all__ = ["RepromptConfig", "prototype", "choose_seed", "reprompt_scene"]

Repropagate = Callable[[str, int, MaskRLE, str], Tracklet]


@dataclass(frozen=True)
class RepromptConfig:
    """Re-prompting settings."""

    overlap_iou: float = 0.5  # boxes at IoU >= this coincide (same object)
    duplicate_frac: float = 0.5  # tracks coinciding on this fraction of frames: one object
    min_seed_score: float = 0.0  # seed frames need at least this detection score
    all_views: bool = True  # also re-prompt views where the identity has no tracklet ...
    seed_threshold: float = 0.5  # ... from a candidate frame this close (cosine) to it
    min_views: int = 2  # identities seen in fewer views at the end are dropped (1: keep)
    keep_score: float | None = 0.6  # ... unless their tracked boxes' mean score is >= this
    #                                (None: dropped whatever their score)
    seeded_merge: str = "always"  # a track seeded in a view the identity had no tracklet
    #    in, landing on another identity's tracked boxes, merges the two: "always", only
    #    when the other's seeded track lands on this one's too ("mutual"), or "never"
    #    ("mutual": mixed on three splits, docs/stage1.md#re-prompting)
    merge_similarity: float | None = 0.8  # merge two identities only when their
    #    prototypes (Eq. 2) are at least this close (cosine); None: no appearance check.
    #    0.8: between seed 11's wrong merges (0.58, 0.70) and right ones (0.88, 0.89)

    def __post_init__(self) -> None:
        if self.seeded_merge not in ("always", "mutual", "never"):
            raise ValueError(f"reprompt.seeded_merge must be 'always', 'mutual' or 'never', "
                             f"got {self.seeded_merge!r}")
        if self.merge_similarity is not None and not -1.0 <= self.merge_similarity <= 1.0:
            raise ValueError(f"reprompt.merge_similarity is a cosine in [-1, 1] (or null: no "
                             f"appearance check), got {self.merge_similarity!r}")


def prototype(embeddings: np.ndarray) -> np.ndarray:
    """Eq. 2: normalised mean of the matched set's tracklet embeddings, (d,)."""
    p = np.asarray(embeddings, dtype=np.float64).mean(axis=0)
    return p / max(np.linalg.norm(p), 1e-12)


def choose_seed(members: list[Tracklet], frame_embs: list[np.ndarray], proto: np.ndarray,
                min_score: float = 0.0) -> tuple[int, int]:
    """(member index, frame index) of the member frame closest to the prototype."""
    best, arg = -np.inf, (0, 0)
    for m, (t, e) in enumerate(zip(members, frame_embs, strict=True)):
        sims = np.asarray(e) @ proto
        sims = np.where(t.scores >= min_score, sims, -np.inf)
        k = int(np.argmax(sims))
        if sims[k] > best:
            best, arg = float(sims[k]), (m, k)
    return arg


def _merge_into(reprop: Tracklet, originals: list[Tracklet], local_id: int) -> Tracklet:
    """Re-propagated frames first; frames only the originals had keep their boxes."""
    rows: dict[int, tuple[np.ndarray, float, MaskRLE | None]] = {}
    for t in [*originals, reprop]:  # reprop last: it wins on shared frames
        for k, f in enumerate(t.frames.tolist()):
            rows[f] = (t.boxes[k], float(t.scores[k]), t.masks[k] if t.masks else None)
    frames = sorted(rows)
    masks = [rows[f][2] for f in frames]
    return Tracklet(reprop.scene, reprop.view, local_id, reprop.category, np.array(frames),
                    np.array([rows[f][0] for f in frames]).reshape(-1, 4),
                    np.array([rows[f][1] for f in frames]),
                    tuple(masks) if all(m is not None for m in masks) else None)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xywh boxes (the evaluator's row-wise IoU)."""
    return float(iou_xywh(np.asarray(a, float)[None], np.asarray(b, float)[None])[0])


def _drop_frames(t: Tracklet, drop: set[int]) -> Tracklet | None:
    keep = np.array([f not in drop for f in t.frames.tolist()], bool)
    if not keep.any():
        return None
    return Tracklet(t.scene, t.view, t.local_id, t.category, t.frames[keep], t.boxes[keep],
                    t.scores[keep],
                    tuple(m for m, k in zip(t.masks, keep, strict=True) if k) if t.masks else None)


def reprompt_scene(
    tracklets: list[Tracklet],
    frame_embs: list[np.ndarray],
    emb: np.ndarray,
    gids: np.ndarray,
    repropagate: Repropagate,
    cfg: RepromptConfig = RepromptConfig(),
) -> dict[int, dict[str, Tracklet]]:
    """Re-prompt every identity of one scene in every view, then resolve duplicates.

    Args:
        tracklets: the scene's n single-view tracklets.
        frame_embs: n arrays (len(t), d) of per-frame embeddings.
        emb: (n, d) tracklet embeddings (Eq. 1).
        gids: (n,) global id per tracklet (from association).
        repropagate: ``(view, seed_frame, seed_mask, direction) -> Tracklet``.

    Returns:
        {global id: {view: tracklet}} after re-prompting and duplicate resolution.
    """
    out: dict[int, dict[str, Tracklet]] = {}
    original_frames: dict[tuple[int, str], set[int]] = {}
    all_views = sorted({t.view for t in tracklets})
    for g in np.unique(gids).tolist():
        idx = np.flatnonzero(gids == g)
        proto = prototype(emb[idx])
        views = sorted({tracklets[i].view for i in idx})
        out[g] = {}
        for v in views:
            mem = [int(i) for i in idx if tracklets[i].view == v]
            members = [tracklets[i] for i in mem]
            original_frames[(g, v)] = {f for t in members for f in t.frames.tolist()}
            if not all(t.masks for t in members):
                out[g][v] = _merge_into(members[0], members, members[0].local_id)
                continue
            m, k = choose_seed(members, [frame_embs[i] for i in mem], proto,
                               cfg.min_seed_score)
            seed_t = members[m]
            both = _bidirectional(repropagate, v, int(seed_t.frames[k]), seed_t.masks[k],
                                  seed_t.local_id)
            out[g][v] = _merge_into(both, members, seed_t.local_id)
        if not cfg.all_views:
            continue
        for v in all_views:
            if v in out[g]:
                continue
            # a view the identity was not matched in: the candidate mask closest to the
            # prototype among all of the view's tracklet frames, if it is close enough
            cand = [int(i) for i in range(len(tracklets))
                    if tracklets[i].view == v and tracklets[i].masks]
            if not cand:
                continue
            m, k = choose_seed([tracklets[i] for i in cand], [frame_embs[i] for i in cand],
                               proto, cfg.min_seed_score)
            seed_t = tracklets[cand[m]]
            if float(np.asarray(frame_embs[cand[m]])[k] @ proto) < cfg.seed_threshold:
                continue
            out[g][v] = _bidirectional(repropagate, v, int(seed_t.frames[k]), seed_t.masks[k],
                                       0)
            original_frames[(g, v)] = set()
    need = min(max(1, cfg.min_views), len(all_views))  # a one-view scene keeps all
    members = {g: np.flatnonzero(gids == g) for g in np.unique(gids).tolist()}
    out = _merge_duplicates(out, original_frames, cfg, emb, members)
    _drop_claimed_frames(out, original_frames, cfg)
    kept = [g for g in sorted(out) if len(out[g]) >= need
            or _tracked_score(out[g], original_frames, g) >= _inf(cfg.keep_score)]
    return {new: out[g] for new, g in enumerate(kept, start=1)}


def _inf(x: float | None) -> float:
    return np.inf if x is None else x


def _tracked_score(per_view: dict[str, Tracklet], original_frames, g: int) -> float:
    """Mean score of an identity's tracked (not re-propagated) boxes; 0 if none."""
    scores = [float(s) for v, t in per_view.items()
              for f, s in zip(t.frames.tolist(), t.scores, strict=True)
              if f in original_frames.get((g, v), ())]
    return float(np.mean(scores)) if scores else 0.0


def _bidirectional(repropagate: Repropagate, view: str, f0: int, mask0: MaskRLE,
                   local_id: int) -> Tracklet:
    """The seed re-propagated forward and backward, as one track."""
    fwd = repropagate(view, f0, mask0, "forward")
    bwd = repropagate(view, f0, mask0, "backward")
    return _merge_into(fwd, [bwd], local_id)


def _drop_claimed_frames(out, original_frames, cfg: RepromptConfig) -> None:
    """A re-propagated (not original) box on another identity's box is dropped."""
    by_view: dict[str, list[int]] = {}
    for g, per_view in out.items():
        for v in per_view:
            by_view.setdefault(v, []).append(g)
    for v, gs in by_view.items():
        boxes = {g: dict(zip(out[g][v].frames.tolist(), out[g][v].boxes, strict=True))
                 for g in gs}
        for g in gs:
            drop = set()
            for f, b in boxes[g].items():
                if f in original_frames[(g, v)]:
                    continue
                for h in gs:
                    if h != g and f in boxes[h] and _box_iou(b, boxes[h][f]) >= cfg.overlap_iou:
                        drop.add(f)
                        break
            if drop:
                t = _drop_frames(out[g][v], drop)
                if t is None:
                    del out[g][v]
                else:
                    out[g][v] = t


def _merge_duplicates(out: dict[int, dict[str, Tracklet]],
                      original_frames: dict[tuple[int, str], set[int]],
                      cfg: RepromptConfig, emb: np.ndarray,
                      members: dict[int, np.ndarray]) -> dict[int, dict[str, Tracklet]]:
    """Merge identities that are one object: their tracked boxes coincide in some view,
    or one was re-prompted onto the other's tracked boxes, and they never clash (see
    :func:`_compare`).

    On frames both tracks hold, a tracked box wins over a re-propagated one.
    ``original_frames`` is updated for the merged identities.
    """
    gs = sorted(g for g in out if out[g])
    parent = {g: g for g in gs}

    def find(g):
        while parent[g] != g:
            g = parent[g]
        return g

    for a_i, a in enumerate(gs):
        for b in gs[a_i + 1:]:
            ra, rb = find(a), find(b)
            if ra == rb:
                continue
            same, a_on_b, b_on_a, clash = False, False, False, False
            a_seeded, b_seeded = False, False  # landings of tracks seeded in views missed
            for v in set(out[ra]) & set(out[rb]):
                r = _compare(out[ra][v], out[rb][v], original_frames.get((ra, v), set()),
                             original_frames.get((rb, v), set()), cfg)
                tracked_a, tracked_b = bool(original_frames.get((ra, v))), \
                    bool(original_frames.get((rb, v)))
                same, clash = same or r[0], clash or r[3]
                a_on_b, a_seeded = a_on_b or (r[1] and tracked_a), a_seeded or \
                    (r[1] and not tracked_a)
                b_on_a, b_seeded = b_on_a or (r[2] and tracked_b), b_seeded or \
                    (r[2] and not tracked_b)
            seeded = {"always": a_seeded or b_seeded, "mutual": a_seeded and b_seeded,
                      "never": False}[cfg.seeded_merge]
            # tracked boxes that coincide, or one re-prompted onto the other's tracked boxes
            r_same = same
            same = same or a_on_b or b_on_a or seeded
            if same and not clash:  # the two prototypes (Eq. 2) of their tracklets
                sim = float(prototype(emb[members[ra]]) @ prototype(emb[members[rb]]))
                _log.debug("merge candidate %s + %s: cosine %.3f (tracked boxes coincide: "
                           "%s, landing: %s/%s, seeded landing: %s/%s)", ra, rb, sim, r_same,
                           a_on_b, b_on_a, a_seeded, b_seeded)
                if cfg.merge_similarity is not None and sim < cfg.merge_similarity:
                    continue
            if same and not clash:
                for v, t in out[rb].items():
                    orig_a = original_frames.get((ra, v), set())
                    orig_b = original_frames.get((rb, v), set())
                    if v in out[ra]:
                        ta = out[ra][v]
                        # later parts win: re-propagated boxes, then tracked ones
                        parts = [x for x in (_keep_frames(ta, None, orig_a),
                                             _keep_frames(t, None, orig_b),
                                             _keep_frames(t, orig_b),
                                             _keep_frames(ta, orig_a)) if x is not None]
                        out[ra][v] = _merge_into(parts[-1], parts[:-1], ta.local_id)
                    else:
                        out[ra][v] = t
                    original_frames[(ra, v)] = orig_a | orig_b
                out[rb] = {}
                parent[rb] = ra
                members[ra] = np.concatenate([members[ra], members[rb]])
    return {g: out[g] for g in gs if out[g]}


def _compare(ta: Tracklet, tb: Tracklet, orig_a: set[int], orig_b: set[int],
             cfg: RepromptConfig) -> tuple[bool, bool, bool, bool]:
    """(same, a_on_b, b_on_a, clash) of two identities' tracks in one view.

    Boxes "coincide" at box IoU >= ``overlap_iou``; "original" boxes are tracked ones,
    the others were re-propagated. Same: the original tracks coincide on at least
    ``duplicate_frac`` of the shorter one. a_on_b: a's re-propagated boxes coincide with
    b's original ones on that fraction of the shorter of the two (and b_on_a the other way
    round). Clash: both were tracked at the same frames, mostly in different places: two
    objects. A re-propagated box that disagrees is no evidence (re-propagation may drift).
    """
    ba = dict(zip(ta.frames.tolist(), ta.boxes, strict=True))
    bb = dict(zip(tb.frames.tolist(), tb.boxes, strict=True))
    fa, fb = set(ba), set(bb)

    def on(x: set[int], y: set[int]) -> bool:
        shared = x & y
        if not shared:
            return False
        hits = sum(_box_iou(ba[f], bb[f]) >= cfg.overlap_iou for f in shared)
        return hits >= cfg.duplicate_frac * min(len(x), len(y))

    oa, ob = fa & orig_a, fb & orig_b
    both = oa & ob
    hits = sum(_box_iou(ba[f], bb[f]) >= cfg.overlap_iou for f in both)
    clash = bool(both) and hits < cfg.duplicate_frac * len(both)
    return on(oa, ob), on(fa - orig_a, ob), on(oa, fb - orig_b), clash


def _keep_frames(t: Tracklet, keep: set[int] | None, drop: set[int] | None = None):
    """``t`` restricted to the frames in ``keep`` (all if None) and not in ``drop``."""
    gone = {f for f in t.frames.tolist()
            if (keep is not None and f not in keep) or (drop is not None and f in drop)}
    return _drop_frames(t, gone)
