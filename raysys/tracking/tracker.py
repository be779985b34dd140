"""Online cross-view referring tracker on a trained ViewSAM (paper §3.3, inference).

:class:`ViewSAMTracker` takes one synchronised set of frames (one image per view) at a time
and keeps its own bounded state, so the same object runs offline over a dataset
(:mod:`raysys.tracking.run`) and behind a server. Per clip of ``T`` frame sets (no
look-ahead beyond the clip):

1. :meth:`ViewSAM.encode_clip` over the ``V x T`` frames with the expression: image encoder
   with the view token (Eq. 3-4; the last frame's token ``e`` carried from clip to clip as
   the EMA's ``e_{t-1}``) and VC-CMA adapters (Eq. 5-7), then the Candidate Generator's
   proposals and referring logits against each view's updated text ``T_ca``.
2. Frame by frame, every live single-view track runs SAM2 on its own memory bank
   (:meth:`ViewSAM.track_frame`: memory attention, mask decoder prompted by the proposal
   overlapping its last box when there is one, BAR against the memory-free decoding,
   memory encoding); the tracks of all views go through SAM2 as one batch (the result is
   the same as one track at a time, :func:`raysys.viewsam.base.condition_on_banks`).
   Proposals that refer to the expression and overlap no live track open new tracks (a
   conditioning frame, no memory; again one batch for all views). A track absent for
   ``max_lost`` frames ends; the younger of two coinciding tracks ends. A track matched to
   a proposal is present in that frame and reports the proposal's box; elsewhere SAM2's
   mask gives its box. External
   proposals (``proposals=fn``) may replace the Candidate Generator's.
3. CGCT embeddings of every present track; at the end of the clip new tracks get global
   ids from :class:`raysys.tracking.identity.IdentityBank` (assignment across views, new
   ids for new objects), and identity prototypes are updated.

Bounded state: at most ``max_tracks`` live tracks per view, each with SAM2 memory of the
last ``memory_frames`` frames plus its conditioning frame; at most ``max_identities``
identity prototypes; one clip of buffered frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from raysys.tracking.config import TrackConfig
from raysys.tracking.identity import IdentityBank
from raysys.tracking.tracks import (
    FrameResult,
    TrackedObject,
    _nbytes,
    _Track,
    _ViewFrame,
    assign_proposals,
    tracked_objects,
)
from raysys.viewsam.candidate_generator import pairwise_iou
from raysys.viewsam.prompts import masks_to_boxes

__all__ = ["TrackedObject", "FrameResult", "ProposalFn", "ViewSAMTracker", "assign_proposals"]

ProposalFn = Callable[[int, int], "tuple[np.ndarray, np.ndarray | None, np.ndarray | None]"]
"""External proposals: ``fn(frame_index, view) -> (boxes (K, 4) xyxy input pixels,
referring probabilities (K,) or None, objectness (K,) or None)``."""

_NUM_FRAMES = 1 << 30  # open-ended stream for SAM2's object-pointer window


class ViewSAMTracker:
    """Online ViewSAM tracking of one expression over ``V`` synchronised views.

    Args:
        model: a trained ViewSAM (eval mode; its device is used).
        expression: the referring sentence.
        num_views: views per frame set.
        cfg: tracker settings.
        view_ids: camera index of each view for the view token: pass
            :func:`raysys.io.views.view_ids` of the views' names, the rule training uses
            (default ``0..V-1``, the same for ``View1..ViewV``).
        proposals: optional :data:`ProposalFn` whose boxes replace the Candidate Generator's
            proposals (boxes from another detector, or GT boxes in an oracle benchmark).
            Referring probabilities left ``None`` come from the Candidate Generator's
            matching branch on those boxes; objectness left ``None`` is 1.

    ``step(frames)`` returns the results of the frame sets whose clip is complete (an empty
    list while a clip is filling); ``flush()`` processes a partial clip at the end.
    """

    def __init__(self, model, expression: str, num_views: int, cfg: TrackConfig | None = None,
                 view_ids: Sequence[int] | None = None,
                 proposals: ProposalFn | None = None) -> None:
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        self.model = model.eval()
        self.cfg = cfg or TrackConfig()
        self.num_views = num_views
        self.expression = expression
        self.device = next(model.parameters()).device
        ids = list(range(num_views)) if view_ids is None else list(view_ids)
        if len(ids) != num_views:
            raise ValueError(f"{len(ids)} view ids for {num_views} views")
        nv = model.view_token.num_views if model.view_token is not None else None
        if nv is not None and max(ids) >= nv:
            raise ValueError(f"view id {max(ids)} but the model has {nv} view slots; pass "
                             f"view_ids below {nv}")
        self.view_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        calib = getattr(model, "calibration", None) or {}
        c = self.cfg
        self.refer_threshold = c.refer_threshold if c.refer_threshold is not None else \
            float(calib.get("refer_threshold", 0.5))
        self.objectness_threshold = c.objectness_threshold \
            if c.objectness_threshold is not None else \
            float(calib.get("objectness_threshold", 0.1))
        self.min_refer = c.min_refer if c.min_refer is not None else self.refer_threshold
        self.text = {k: v.to(self.device) for k, v in model.tokenize([expression]).items()}
        sam2 = model.sam2
        keep = max(int(sam2.num_maskmem), int(getattr(sam2, "max_obj_ptrs_in_encoder", 1)))
        self.memory_frames = self.cfg.memory_frames or keep
        self.identities = IdentityBank(self.cfg.id_threshold, self.cfg.id_momentum,
                                       self.cfg.max_identities)
        self.tracks: list[list[_Track]] = [[] for _ in range(num_views)]
        self.view_state: torch.Tensor | None = None
        self.text_ref: torch.Tensor | None = None  # (V, D_t) this clip's t_R per view (BAR)
        self.buffer: list[list[np.ndarray]] = []
        self.frame_size: tuple[int, int] | None = None
        self.next_frame = 0  # stream index of the first buffered frame set
        self.next_tid = 1
        self.proposals = proposals

    # ------------------------------------------------------------------ public API
    def step(self, frames: Sequence[np.ndarray]) -> list[FrameResult]:
        """Add one synchronised frame set (one ``(H, W, 3)`` uint8 RGB image per view)."""
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
            return []
        return self._run_clip()

    def flush(self) -> list[FrameResult]:
        """Process the buffered frame sets of an incomplete clip (end of a stream)."""
        return self._run_clip() if self.buffer else []

    def state_bytes(self) -> int:
        """Bytes held in tensors and arrays of the tracker's state (memory banks, tracks,
        identities, buffered frames): what a long stream must keep flat."""
        n = sum(f.nbytes for fs in self.buffer for f in fs)
        n += sum(p.nbytes for p in self.identities.prototypes.values())
        for tracks in self.tracks:
            for tr in tracks:
                for part in tr.bank.values():
                    for entry in part.values():
                        n += sum(_nbytes(v) for v in entry.values())
        if self.view_state is not None:
            n += self.view_state.numel() * self.view_state.element_size()
        return n

    @property
    def num_live_tracks(self) -> int:
        return sum(len(t) for t in self.tracks)

    # ------------------------------------------------------------------ one clip
    @torch.no_grad()
    def _run_clip(self) -> list[FrameResult]:
        model = self.model
        t, v = len(self.buffer), self.num_views
        h, w = self.frame_size
        arr = np.stack([np.stack(fs) for fs in self.buffer], 1)  # (V, T, H, W, 3)
        x = torch.from_numpy(arr).to(self.device).permute(0, 1, 4, 2, 3).float().div_(255)
        ce = model.encode_clip(x[None], self.text, self.view_ids, self.view_state)
        self.view_state = ce.view_state
        self.text_ref = ce.text_ref
        enc = ce.enc
        s = model.image_size
        cand = ce.cand
        extra = None if ce.text_token is None else ce.text_token[:, None]  # (1, 1, d)
        raw: list[list[list[tuple]]] = [[[] for _ in range(v)] for _ in range(t)]
        seen: dict[int, _Track] = {}
        for i in range(t):
            g = self.next_frame + i
            views = []
            for k in range(v):
                n = k * t + i  # encodings are ordered (view, frame)
                ctx = _ViewFrame(n, [lvl[n:n + 1] for lvl in enc["fpn"]],
                                 enc["pos"][-1][n:n + 1])
                if cand is not None:
                    ctx.props, ctx.refer = cand.boxes[n], cand.refer_logits[n].sigmoid()
                    ctx.obj = cand.objectness[n]
                if self.proposals is not None:
                    self._external(ctx, cand, g, k, (h, w), s)
                views.append(ctx)
            present = self._step_frame(g, views, extra)
            for k, ctx in enumerate(views):
                if not present[k]:
                    continue
                embs = self._embed(enc, ce.views, ctx.n, [p[1] for p in present[k]])
                for j, (tr, low, score, box) in enumerate(present[k]):
                    seen[tr.tid] = tr
                    if embs is not None:
                        tr.emb.append(embs[j])
                    raw[i][k].append((tr, low, score, box))
        self._assign_ids(seen)
        results = [FrameResult(self.next_frame + i,
                               [tracked_objects(raw[i][k], (h, w), s, self.min_refer,
                                                self.cfg.keep_masks) for k in range(v)])
                   for i in range(t)]
        self.next_frame += t
        self.buffer = []
        return results

    def _external(self, ctx: _ViewFrame, cand, g: int, k: int, hw: tuple[int, int],
                  s: int) -> None:
        """Replace a view-frame's proposals with ``self.proposals(g, k)``."""
        boxes, refer, obj = self.proposals(g, k)
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                                device=self.device)
        scale = boxes.new_tensor([s / hw[1], s / hw[0], s / hw[1], s / hw[0]])
        boxes = boxes * scale  # input pixels -> the model's square input
        kk = boxes.shape[0]
        if refer is None:
            if cand is None or cand.features is None:
                raise ValueError("external proposals without referring probabilities need "
                                 "the model's Candidate Generator to score them")
            one = (lambda x: None if x is None else x[ctx.n:ctx.n + 1])  # noqa: E731
            sub = dataclasses.replace(cand, features=one(cand.features),
                                      text_emb=one(cand.text_emb), pixels=one(cand.pixels))
            ref = self.model.candidate_generator.match_boxes(sub, boxes[None])[0].sigmoid()
        else:
            ref = torch.as_tensor(np.asarray(refer, dtype=np.float32).reshape(kk),
                                  device=self.device)
        ob = boxes.new_ones(kk) if obj is None else torch.as_tensor(
            np.asarray(obj, dtype=np.float32).reshape(kk), device=self.device)
        ctx.props, ctx.refer, ctx.obj = boxes, ref.float(), ob

    def _track_batch(self, g: int, views: list[_ViewFrame], items: list[tuple],
                     extra, init: bool) -> list[tuple[torch.Tensor, float]]:
        """One SAM2 step of several tracks at once (any views): ``items`` are
        ``(view, box, has_box, bank)``; returns ``(mask logits (1, 1, h, w), score)`` each."""
        if not items:
            return []
        n = len(items)
        feats = [torch.cat([views[k].feats[lvl] for k, *_ in items])
                 for lvl in range(len(views[0].feats))]
        pos = torch.cat([views[k].pos for k, *_ in items])
        boxes = torch.stack([b for _, b, _, _ in items])
        has = torch.tensor([h for _, _, h, _ in items], dtype=torch.bool, device=boxes.device)
        ext = None if extra is None else extra.expand(n, -1, -1)
        ks = torch.tensor([k for k, *_ in items], device=boxes.device)  # BAR: frame = view
        ref = None if self.text_ref is None else self.text_ref[ks]
        res = self.model.track_frame(g, _NUM_FRAMES, feats, pos, boxes, has, ext,
                                     [bank for *_, bank in items], init=init, text_ref=ref,
                                     groups=ks)
        scores = res["scores"].float().tolist()
        return [(res["masks"][j:j + 1], scores[j]) for j in range(n)]

    def _step_frame(self, g: int, views: list[_ViewFrame], extra) -> list[list[tuple]]:
        """Track every view at stream frame ``g``; returns per view the ``(track, mask
        logits, score, box)`` of the tracks present in the frame (box: the matched
        proposal's in model pixels, else None: the mask's). The
        live tracks of all views go through SAM2 in one batch, then the new tracks of all
        views in another."""
        cfg, s = self.cfg, self.model.image_size
        items, owners, matched = [], [], []
        for k, ctx in enumerate(views):
            pairs = {} if ctx.props is None or not self.tracks[k] else assign_proposals(
                torch.stack([tr.box for tr in self.tracks[k]]), ctx.props, cfg.track_iou)
            for i, tr in enumerate(self.tracks[k]):
                box, has = tr.box, False
                j = pairs.get(i)
                if j is not None:
                    box, has = ctx.props[j], True
                    tr.refer_sum += float(ctx.refer[j])
                    tr.refer_n += 1
                items.append((k, box, has, tr.bank))
                owners.append(tr)
                matched.append(box if has else None)
        results = self._track_batch(g, views, items, extra, init=False)
        outs: list[list[tuple]] = [[] for _ in views]
        keeps: list[list[_Track]] = [[] for _ in views]
        for tr, prop, (low, score) in zip(owners, matched, results, strict=True):
            self._prune(tr.bank, g)
            if prop is not None or (score > 0 and bool((low > 0).any())):
                tr.lost = 0
                tr.box = prop if prop is not None else masks_to_boxes(low, s)[0]
                outs[tr.view].append((tr, low, score, prop))
                keeps[tr.view].append(tr)
            else:
                tr.lost += 1
                if tr.lost <= cfg.max_lost:
                    keeps[tr.view].append(tr)
        # new tracks from referred proposals that overlap no present track
        new = []
        for k, ctx in enumerate(views):
            outs[k], keeps[k] = self._dedup(outs[k], keeps[k])
            new += [(k, j) for j in self._new_candidates(ctx, outs[k], len(keeps[k]))]
        banks = [{"cond_frame_outputs": {}, "non_cond_frame_outputs": {}} for _ in new]
        results = self._track_batch(g, views, [(k, views[k].props[j], True, b) for (k, j), b
                                               in zip(new, banks, strict=True)], extra,
                                    init=True)
        for (k, j), bank, (low, score) in zip(new, banks, results, strict=True):
            box = views[k].props[j]
            tr = _Track(tid=self.next_tid, view=k, start=g, box=box,
                        bank=bank, refer_sum=float(views[k].refer[j]), refer_n=1)
            self.next_tid += 1
            keeps[k].append(tr)
            outs[k].append((tr, low, score, box))
        for k in range(len(views)):
            self.tracks[k] = keeps[k]
        return outs

    def _new_candidates(self, ctx: _ViewFrame, out: list[tuple], kept: int) -> list[int]:
        """Proposals of one view that may open tracks: referred and present enough, best
        first, not overlapping a present track or a candidate before them; at most
        ``max_tracks - kept`` (bounded work per frame)."""
        cfg = self.cfg
        props = ctx.props
        if props is None or not props.shape[0] or kept >= cfg.max_tracks:
            return []
        ok = (ctx.refer >= self.refer_threshold) & (ctx.obj >= self.objectness_threshold)
        order = [j for j in torch.argsort(ctx.refer * ctx.obj, descending=True).tolist()
                 if bool(ok[j])]
        taken = [tr.box for tr, *_ in out]
        chosen: list[int] = []
        for j in order:
            if len(chosen) >= cfg.max_tracks - kept:
                break
            b = props[j]
            if taken and float(pairwise_iou(b[None], torch.stack(taken))[0].max()) >= \
                    cfg.new_track_iou:
                continue
            chosen.append(j)
            taken.append(b)
        return chosen

    def _dedup(self, out, keep):
        """End the younger of two present tracks whose boxes coincide."""
        drop: set[int] = set()
        for a in range(len(out)):
            for b in range(a + 1, len(out)):
                ta, tb = out[a][0], out[b][0]
                if ta.tid in drop or tb.tid in drop:
                    continue
                if float(pairwise_iou(ta.box[None], tb.box[None])[0, 0]) >= self.cfg.duplicate_iou:
                    drop.add(max(ta.tid, tb.tid))
        if not drop:
            return out, keep
        return ([o for o in out if o[0].tid not in drop],
                [tr for tr in keep if tr.tid not in drop])

    def _prune(self, bank: dict, g: int) -> None:
        """Bound a track's memory: SAM2 reads at most the last ``memory_frames`` frames."""
        non = bank["non_cond_frame_outputs"]
        for f in [f for f in non if f <= g - self.memory_frames]:
            del non[f]

    def _embed(self, enc, views, n: int, lows: list[torch.Tensor]) -> list[np.ndarray] | None:
        cgct = self.model.cgct
        if cgct is None:
            return None
        masks = torch.cat(lows, 1).sigmoid()  # (1, O, h, w)
        vt = None
        if cgct.film is not None and views is not None:
            vt = views.reshape(-1, views.shape[-1])[n:n + 1]
        e = cgct([st[n:n + 1] for st in enc["stages"]], masks, vt)[0]  # (O, D)
        return list(e.float().cpu().numpy())

    def _assign_ids(self, seen: dict[int, _Track]) -> None:
        """Global ids for this clip's new tracks (per view, an assignment to identities that
        no other live track of the view holds), then prototype updates."""
        for k in range(self.num_views):
            new = [tr for tr in seen.values() if tr.view == k and tr.gid is None]
            if not new:
                continue
            busy = {tr.gid for tr in seen.values() if tr.view == k and tr.gid is not None}
            busy |= {tr.gid for tr in self.tracks[k] if tr.gid is not None}
            embs = [np.mean(tr.emb, 0) if tr.emb else None for tr in new]
            for tr, gid in zip(new, self.identities.assign(embs, busy), strict=True):
                tr.gid = gid
        for tr in seen.values():
            if tr.emb:
                self.identities.update(tr.gid, np.mean(tr.emb, 0))
            tr.emb = []
