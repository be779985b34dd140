"""Bi-directional re-prompting (ViewSAM paper, §3.2, Eq. 2).

For each identity found by cross-view association, the prototype is the normalised mean
of its member tracklets' embeddings (Eq. 2). In each view where the identity has
tracklets, the member frame whose embedding is closest to the prototype is the seed; the
concept tracker is re-prompted with that frame's mask forward and backward in time. The
re-propagated track replaces the identity's fragments in that view (frames it misses keep
the original boxes). Finally duplicate identities are resolved: re-propagated frames that
land on another identity's box are dropped, and identities whose tracks coincide in a
view are merged when nothing forbids it.

The concept tracker is reached through ``repropagate(view, seed_frame, seed_mask,
direction) -> Tracklet`` so that a scene actor can call tracker actors back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from raysys.eval.pairs import iou_xywh
from raysys.types import MaskRLE, Tracklet

__all__ = ["RepromptConfig", "prototype", "choose_seed", "reprompt_scene"]

Repropagate = Callable[[str, int, MaskRLE, str], Tracklet]


@dataclass(frozen=True)
class RepromptConfig:
    """Re-prompting settings."""

    overlap_iou: float = 0.5  # a re-propagated box on another identity's box at IoU >= this
    duplicate_frac: float = 0.5  # identities sharing this fraction of frames in a view merge
    min_seed_score: float = 0.0  # seed frames need at least this detection score


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
    """Re-prompt every identity of one scene in every view where it has tracklets.

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
            f0, mask0 = int(seed_t.frames[k]), seed_t.masks[k]
            fwd = repropagate(v, f0, mask0, "forward")
            bwd = repropagate(v, f0, mask0, "backward")
            both = _merge_into(fwd, [bwd], seed_t.local_id)
            out[g][v] = _merge_into(both, members, seed_t.local_id)
    _drop_claimed_frames(out, original_frames, cfg)
    return _merge_duplicates(out, cfg)


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


def _merge_duplicates(out: dict[int, dict[str, Tracklet]], cfg: RepromptConfig):
    """Merge identities whose tracks coincide in some view and co-exist nowhere."""
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
            same, clash = False, False
            for v in set(out[ra]) & set(out[rb]):
                ta, tb = out[ra][v], out[rb][v]
                shared = np.intersect1d(ta.frames, tb.frames)
                if shared.size == 0:
                    continue
                ba = dict(zip(ta.frames.tolist(), ta.boxes, strict=True))
                bb = dict(zip(tb.frames.tolist(), tb.boxes, strict=True))
                hits = sum(_box_iou(ba[f], bb[f]) >= cfg.overlap_iou for f in shared.tolist())
                if hits >= cfg.duplicate_frac * min(len(ta), len(tb)):
                    same = True
                else:
                    clash = True
            if same and not clash:
                for v, t in out[rb].items():
                    out[ra][v] = _merge_into(t, [out[ra][v]], out[ra][v].local_id) \
                        if v in out[ra] else t
                out[rb] = {}
                parent[rb] = ra
    ordered = [g for g in gs if out[g]]
    return {new: out[g] for new, g in enumerate(ordered, start=1)}
