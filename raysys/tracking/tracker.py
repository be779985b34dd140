"""Online cross-view referring tracker on a trained ViewSAM (paper §3.3, inference).

:class:`MultiExpressionTracker` tracks the ``E`` expressions of one scene at once and
:class:`ViewSAMTracker` one expression (the same code, ``E = 1``). Either takes one
synchronised set of frames (one image per view) at a time and keeps its own bounded state,
so the same object runs offline over a dataset (:mod:`raysys.tracking.run`) and behind a
server. Per clip of ``T`` frame sets (no look-ahead beyond the clip):

1. :meth:`ViewSAM.encode_clip` over the ``V x T`` frames with the expressions: image
   encoder with the view token (Eq. 3-4; the last frame's token ``e`` carried from clip to
   clip as the EMA's ``e_{t-1}``) and VC-CMA adapters (Eq. 5-7), then the Candidate
   Generator's proposals and referring logits against each view's updated text ``T_ca``.
   The frames are decoded and encoded once up to the first text-conditioned stage; only
   the rest runs per expression (one batch). ``step(frames, encoding)`` takes it computed
   outside instead, batched with other streams' clips (:mod:`raysys.tracking.encode`).
2. Frame by frame, every live single-view track of every expression runs SAM2 on its own
   memory bank
   (:meth:`ViewSAM.track_frame`: memory attention, mask decoder prompted by the proposal
   overlapping its last box when there is one, BAR against the memory-free decoding,
   memory encoding); the tracks of all views and expressions go through SAM2 as one batch
   (the result is the same as one track at a time,
   :func:`raysys.viewsam.base.condition_on_banks`).
   Proposals that refer to the expression and overlap no live track open new tracks (a
   conditioning frame, no memory; again one batch for all views). A track absent for
   ``max_lost`` frames ends; the younger of two coinciding tracks ends. A track matched to
   a proposal is present in that frame and reports the proposal's box; elsewhere SAM2's
   mask gives its box. External
   proposals (``proposals=fn``) may replace the Candidate Generator's.
3. CGCT embeddings of every present track; at the end of the clip new tracks (with
   ``reassign_ids``, every present track) get global ids from their expression's
   :class:`raysys.tracking.identity.IdentityBank` (assignment across views, new ids for
   new objects), and identity prototypes are updated.

Expressions never interact: each has its own tracks, identities and ids, and its results
equal those of a :class:`ViewSAMTracker` of that expression alone (up to float rounding of
the batched arithmetic).

Bounded state: per expression, at most ``max_tracks`` live tracks per view, each with SAM2
memory of the last ``memory_frames`` frames plus its conditioning frame; at most
``max_identities`` identity prototypes; one clip of buffered frames.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from raysys.tracking.config import TrackConfig, decision_thresholds
from raysys.tracking.identity import IdentityBank, assign_clip_ids
from raysys.tracking.tracks import (
    FrameResult,
    TrackedObject,
    _nbytes,
    _Track,
    _ViewFrame,
    assign_proposals,
    cgct_embeddings,
    drop_duplicates,
    external_proposals,
    new_track_candidates,
    tracked_objects,
)
from raysys.viewsam.prompts import masks_to_boxes

__all__ = ["TrackedObject", "FrameResult", "ProposalFn", "ViewSAMTracker",
           "MultiExpressionTracker", "assign_proposals"]

ProposalFn = Callable[[int, int], "tuple[np.ndarray, np.ndarray | None, np.ndarray | None]"]
"""External proposals: ``fn(frame_index, view) -> (boxes (K, 4) xyxy input pixels,
referring probabilities (K,) or None, objectness (K,) or None)``."""

_NUM_FRAMES = 1 << 30  # open-ended stream for SAM2's object-pointer window


@dataclass
class _Query:
    """One expression's state: its tracks (per view), identities and track numbering."""

    expression: str
    tracks: list[list[_Track]]
    identities: IdentityBank
    next_tid: int = 1
    seen: dict = field(default_factory=dict)  # this clip's present tracks, by track id


class MultiExpressionTracker:
    """Online ViewSAM tracking of ``E`` expressions of one scene over ``V`` views.

    Args:
        model: a trained ViewSAM (eval mode; its device is used).
        expressions: the referring sentences (one pass of the frozen trunk serves all).
        num_views: views per frame set.
        cfg: tracker settings.
        view_ids: camera index of each view for the view token: pass
            :func:`raysys.io.views.view_ids` of the views' names, the rule training uses
            (default ``0..V-1``, the same for ``View1..ViewV``).
        proposals: optional :data:`ProposalFn` whose boxes replace the Candidate Generator's
            proposals (boxes from another detector, or GT boxes in an oracle benchmark),
            the same boxes for every expression. Referring probabilities left ``None`` come
            from the Candidate Generator's matching branch on those boxes, per expression;
            given ones hold for every expression. Objectness left ``None`` is 1.
        on_proposals: optional ``fn(frame_index, expression, view, boxes (K, 4) xyxy input
            pixels, refer (K,), objectness (K,))``, called with each view-frame's proposals
            before they are tracked: what the tracker decides from (a diagnostic's view).

    ``step(frames)`` returns, per expression, the results of the frame sets whose clip is
    complete (empty lists while a clip is filling); ``flush()`` processes a partial clip at
    the end.
    """

    def __init__(self, model, expressions: Sequence[str], num_views: int,
                 cfg: TrackConfig | None = None, view_ids: Sequence[int] | None = None,
                 proposals: ProposalFn | None = None, on_proposals=None) -> None:
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        expressions = list(expressions)
        if not expressions or not all(isinstance(e, str) and e.strip() for e in expressions):
            raise ValueError("expressions must be one or more non-empty sentences")
        self.model = model.eval()
        self.cfg = cfg or TrackConfig()
        self.num_views = num_views
        self.expressions = expressions
        self.device = next(model.parameters()).device
        ids = list(range(num_views)) if view_ids is None else list(view_ids)
        if len(ids) != num_views:
            raise ValueError(f"{len(ids)} view ids for {num_views} views")
        nv = model.view_token.num_views if model.view_token is not None else None
        if nv is not None and max(ids) >= nv:
            raise ValueError(f"view id {max(ids)} but the model has {nv} view slots; pass "
                             f"view_ids below {nv}")
        self.view_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        c = self.cfg
        self.refer_threshold, self.objectness_threshold, self.min_refer = \
            decision_thresholds(c, getattr(model, "calibration", None))
        self.text = {k: v.to(self.device) for k, v in model.tokenize(expressions).items()}
        sam2 = model.sam2
        keep = max(int(sam2.num_maskmem), int(getattr(sam2, "max_obj_ptrs_in_encoder", 1)))
        self.memory_frames = self.cfg.memory_frames or keep
        self.batch_objects = c.batch_objects or (
            256 if self.device.type == "cuda" else max(1, 2**19 // model.image_size ** 2))
        self.queries = [_Query(e, [[] for _ in range(num_views)],
                               IdentityBank(c.id_threshold, c.id_momentum, c.max_identities))
                        for e in expressions]
        self.view_state: torch.Tensor | None = None  # (E, V, d_a) the view tokens' EMA
        self.text_ref: torch.Tensor | None = None  # (E*V, D_t) this clip's t_R (BAR)
        self.buffer: list[list[np.ndarray]] = []
        self.frame_size: tuple[int, int] | None = None
        self.next_frame = 0  # stream index of the first buffered frame set
        self.proposals, self.on_proposals = proposals, on_proposals

    # ------------------------------------------------------------------ public API
    def step(self, frames: Sequence[np.ndarray], encoding=None) -> list[list[FrameResult]]:
        """Add one synchronised frame set (one ``(H, W, 3)`` uint8 RGB image per view);
        ``encoding``: the clip's :func:`raysys.tracking.encode.encode_clips` output."""
        if len(frames) != self.num_views:
            raise ValueError(f"expected {self.num_views} frames (one per view), got "
                             f"{len(frames)}")
        for k, f in enumerate(frames):
            f = np.asarray(f)
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise ValueError(f"view {k}: frames must be (H, W, 3) uint8 RGB, got "
                                 f"{f.shape} {f.dtype}")
            if self.frame_size is None:
                self.frame_size = f.shape[:2]
            elif f.shape[:2] != self.frame_size:
                raise ValueError(f"view {k}: frame size {f.shape[:2]} differs from the "
                                 f"stream's {self.frame_size}; resize views to one size")
        self.buffer.append([np.asarray(f) for f in frames])
        if len(self.buffer) < self.cfg.clip_frames:
            return [[] for _ in self.queries]
        return self._run_clip(encoding)

    def flush(self) -> list[list[FrameResult]]:
        """Process the buffered frame sets of an incomplete clip (end of a stream)."""
        return self._run_clip() if self.buffer else [[] for _ in self.queries]

    def state_bytes(self) -> int:
        """Bytes held in tensors and arrays of the tracker's state (memory banks, tracks,
        identities, buffered frames): what a long stream must keep flat."""
        n = sum(f.nbytes for fs in self.buffer for f in fs)
        for q in self.queries:
            n += sum(p.nbytes for p in q.identities.prototypes.values())
            for tracks in q.tracks:
                for tr in tracks:
                    for part in tr.bank.values():
                        for entry in part.values():
                            n += sum(_nbytes(v) for v in entry.values())
        if self.view_state is not None:
            n += self.view_state.numel() * self.view_state.element_size()
        return n

    @property
    def num_live_tracks(self) -> int:
        return sum(len(t) for q in self.queries for t in q.tracks)

    # ------------------------------------------------------------------ one clip
    @torch.no_grad()
    def _run_clip(self, ce=None) -> list[list[FrameResult]]:
        model = self.model
        t, v, ne = len(self.buffer), self.num_views, len(self.queries)
        h, w = self.frame_size
        arr = np.stack([np.stack(fs) for fs in self.buffer], 1)  # (V, T, H, W, 3)
        x = torch.from_numpy(arr).to(self.device).permute(0, 1, 4, 2, 3).float().div_(255)
        ce = ce or model.encode_clip(x[None], self.text, self.view_ids, self.view_state)
        self.view_state, self.text_ref = ce.view_state, ce.text_ref
        enc, s, cand = ce.enc, model.image_size, ce.cand
        extra = None if ce.text_token is None else ce.text_token[:, None]  # (E, 1, d)
        raw = [[[[] for _ in range(v)] for _ in range(t)] for _ in range(ne)]
        for q in self.queries:
            q.seen = {}
        for i in range(t):
            g = self.next_frame + i
            ext = {k: self.proposals(g, k) for k in range(v)} if self.proposals else None
            views = [[self._view_frame(enc, cand, (e * v + k) * t + i, ext and ext[k],
                                       (h, w), s) for k in range(v)] for e in range(ne)]
            if self.on_proposals is not None:
                self._report_proposals(g, views, (h, w), s)
            present = self._step_frame(g, views, extra)
            for k in range(v):  # every expression's tracks on this view-frame at once
                embs = cgct_embeddings(model.cgct, enc, ce.views, [
                    (views[e][k].n, [(r[1], r[3]) for r in present[e][k]]) for e in range(ne)],
                    arr[k, i], s)
                for e, q in enumerate(self.queries):
                    for j, (tr, low, score, box) in enumerate(present[e][k]):
                        q.seen[tr.tid] = tr
                        if embs[e] is not None:
                            tr.emb.append(embs[e][j])
                        raw[e][i][k].append((tr, low, score, box))
        for q in self.queries:
            self._assign_ids(q)
        results = [[FrameResult(self.next_frame + i,
                                [tracked_objects(raw[e][i][k], (h, w), s, self.min_refer,
                                                 self.cfg.keep_masks) for k in range(v)])
                    for i in range(t)] for e in range(ne)]
        self.next_frame += t
        self.buffer = []
        return results

    def _view_frame(self, enc, cand, n: int, ext, hw: tuple[int, int], s: int) -> _ViewFrame:
        """Row ``n`` of the clip's (expression, view, frame) batch: its encodings and its
        proposals (the Candidate Generator's, or ``ext`` = the proposal function's)."""
        ctx = _ViewFrame(n, [lvl[n:n + 1] for lvl in enc["fpn"]], enc["pos"][-1][n:n + 1])
        if cand is not None:
            ctx.props, ctx.refer = cand.boxes[n], cand.refer_logits[n].sigmoid()
            ctx.obj = cand.objectness[n]
        if ext is not None:
            self._external(ctx, cand, ext, hw, s)
        return ctx

    def _report_proposals(self, g: int, views: list[list[_ViewFrame]], hw, s: int) -> None:
        scale = np.array([hw[1], hw[0], hw[1], hw[0]], dtype=np.float32) / s
        for e, row in enumerate(views):
            for k, c in enumerate(row):
                if c.props is not None:
                    self.on_proposals(g, e, k, c.props.float().cpu().numpy() * scale,
                                      c.refer.float().cpu().numpy(), c.obj.float().cpu().numpy())

    def _external(self, ctx: _ViewFrame, cand, ext, hw: tuple[int, int], s: int) -> None:
        """Replace a view-frame's proposals with ``ext = (boxes, refer, objectness)``."""
        external_proposals(ctx, cand, ext, hw, s, self.model.candidate_generator)

    def _track_batch(self, g: int, views: list[list[_ViewFrame]], items: list[tuple],
                     extra, init: bool) -> list[tuple[torch.Tensor, float]]:
        """One SAM2 step of several tracks (any expressions and views): ``items`` are
        ``(expression, view, box, has_box, bank)``, one view-frame's contiguous; returns
        ``(mask logits (1, 1, h, w), score)`` each. Calls hold at most ``batch_objects``
        tracks, and a view-frame's tracks stay in one call (BAR's softmax, Eq. 8)."""
        out: list[tuple[torch.Tensor, float]] = []
        chunk: list[tuple] = []
        for _, grp in itertools.groupby(items, key=lambda it: it[:2]):
            grp = list(grp)
            if chunk and len(chunk) + len(grp) > self.batch_objects:
                out += self._track_call(g, views, chunk, extra, init)
                chunk = []
            chunk += grp
        return out + (self._track_call(g, views, chunk, extra, init) if chunk else [])

    def _track_call(self, g: int, views: list[list[_ViewFrame]], items: list[tuple],
                    extra, init: bool) -> list[tuple[torch.Tensor, float]]:
        n, nv = len(items), self.num_views
        rows = [views[e][k] for e, k, *_ in items]
        feats = [torch.cat([r.feats[lvl] for r in rows]) for lvl in range(len(rows[0].feats))]
        pos = torch.cat([r.pos for r in rows])
        boxes = torch.stack([b for _, _, b, _, _ in items])
        has = torch.tensor([h for *_, h, _ in items], dtype=torch.bool, device=boxes.device)
        es = torch.tensor([e for e, *_ in items], device=boxes.device)
        ext = None if extra is None else extra[es]
        groups = es * nv + torch.tensor([k for _, k, *_ in items], device=boxes.device)
        ref = None if self.text_ref is None else self.text_ref[groups]  # BAR: frame = view
        res = self.model.track_frame(g, _NUM_FRAMES, feats, pos, boxes, has, ext,
                                     [bank for *_, bank in items], init=init, text_ref=ref,
                                     groups=groups)
        scores = res["scores"].float().tolist()
        return [(res["masks"][j:j + 1], scores[j]) for j in range(n)]

    def _step_frame(self, g: int, views: list[list[_ViewFrame]], extra) -> list[list[list]]:
        """Track every expression and view at stream frame ``g``; returns per expression
        and view the ``(track, mask logits, score, box)`` of the tracks present in the
        frame (box: the matched proposal's in model pixels, else None: the mask's). The
        live tracks go through SAM2 in one batch, then the new tracks in another."""
        cfg, s, nv = self.cfg, self.model.image_size, self.num_views
        items, owners, matched = [], [], []
        for e, q in enumerate(self.queries):
            for k, ctx in enumerate(views[e]):
                pairs = {} if ctx.props is None or not q.tracks[k] else assign_proposals(
                    torch.stack([tr.box for tr in q.tracks[k]]), ctx.props, cfg.track_iou)
                for i, tr in enumerate(q.tracks[k]):
                    box, has = tr.box, False
                    j = pairs.get(i)
                    if j is not None:
                        box, has = ctx.props[j], True
                        tr.refer_sum += float(ctx.refer[j])
                        tr.refer_n += 1
                    items.append((e, k, box, has, tr.bank))
                    owners.append((e, tr))
                    matched.append(box if has else None)
        results = self._track_batch(g, views, items, extra, init=False)
        outs = [[[] for _ in range(nv)] for _ in self.queries]
        keeps = [[[] for _ in range(nv)] for _ in self.queries]
        for (e, tr), prop, (low, score) in zip(owners, matched, results, strict=True):
            self._prune(tr.bank, g)
            if prop is not None or (score > 0 and bool((low > 0).any())):
                tr.lost = 0
                tr.box = prop if prop is not None else masks_to_boxes(low, s)[0]
                outs[e][tr.view].append((tr, low, score, prop))
                keeps[e][tr.view].append(tr)
            else:
                tr.lost += 1
                if tr.lost <= cfg.max_lost:
                    keeps[e][tr.view].append(tr)
        new = []  # new tracks from referred proposals that overlap no present track
        for e in range(len(self.queries)):
            for k in range(nv):
                outs[e][k], keeps[e][k] = drop_duplicates(outs[e][k], keeps[e][k],
                                                          cfg.duplicate_iou)
                new += [(e, k, j) for j in new_track_candidates(
                    views[e][k], outs[e][k], len(keeps[e][k]), cfg, self.refer_threshold,
                    self.objectness_threshold)]
        banks = [{"cond_frame_outputs": {}, "non_cond_frame_outputs": {}} for _ in new]
        results = self._track_batch(g, views, [(e, k, views[e][k].props[j], True, b) for
                                               (e, k, j), b in zip(new, banks, strict=True)],
                                    extra, init=True)
        for (e, k, j), bank, (low, score) in zip(new, banks, results, strict=True):
            q, box = self.queries[e], views[e][k].props[j]
            tr = _Track(tid=q.next_tid, view=k, start=g, box=box, bank=bank,
                        refer_sum=float(views[e][k].refer[j]), refer_n=1)
            q.next_tid += 1
            keeps[e][k].append(tr)
            outs[e][k].append((tr, low, score, box))
        for e, q in enumerate(self.queries):
            q.tracks = keeps[e]
        return outs

    def _prune(self, bank: dict, g: int) -> None:
        """Bound a track's memory: SAM2 reads at most the last ``memory_frames`` frames."""
        non = bank["non_cond_frame_outputs"]
        for f in [f for f in non if f <= g - self.memory_frames]:
            del non[f]

    def _assign_ids(self, q: _Query) -> None:
        """Global ids for this clip's tracks of one expression
        (:func:`raysys.tracking.identity.assign_clip_ids`), then prototype updates."""
        assign_clip_ids(q.identities, q.seen, q.tracks, self.cfg.reassign_ids,
                        self.cfg.keep_bonus)
        q.seen = {}


class ViewSAMTracker(MultiExpressionTracker):
    """Online ViewSAM tracking of one expression over ``V`` synchronised views: a
    :class:`MultiExpressionTracker` of one expression, whose ``step``/``flush`` return that
    expression's results; ``tracks`` and ``identities`` are its state."""

    def __init__(self, model, expression: str, num_views: int, cfg: TrackConfig | None = None,
                 view_ids: Sequence[int] | None = None,
                 proposals: ProposalFn | None = None) -> None:
        super().__init__(model, [expression], num_views, cfg, view_ids, proposals)
        self.expression = expression

    def step(self, frames: Sequence[np.ndarray], encoding=None) -> list[FrameResult]:
        return super().step(frames, encoding)[0]

    def flush(self) -> list[FrameResult]:
        return super().flush()[0]

    @property
    def tracks(self) -> list[list[_Track]]:
        return self.queries[0].tracks

    @property
    def identities(self) -> IdentityBank:
        return self.queries[0].identities
