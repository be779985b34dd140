"""The online tracker's state and outputs: tracked objects, single-view tracks, a view's
frame in a clip, and the one-to-one matching of tracks to proposals."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from raysys.viewsam.candidate_generator import output_row, pairwise_iou

__all__ = ["TrackedObject", "FrameResult", "assign_proposals", "tracked_objects",
           "new_track_candidates", "drop_duplicates", "external_proposals",
           "cgct_embeddings"]


@dataclass
class TrackedObject:
    """One referred object in one view and frame."""

    global_id: int  # identity across views and time
    track_id: int  # the single-view track it came from
    box: tuple[float, float, float, float]  # (left, top, width, height) input pixels
    score: float  # sigmoid of SAM2's object-presence logit
    refer: float  # the track's mean referring probability
    mask: np.ndarray | None = None  # (H, W) bool, when ``keep_masks`` (SAM2's; may be
    #   empty in a frame where the box came from a proposal)
    box_source: str = "mask"  # "proposal": the matched proposal's box; "mask": the mask's


@dataclass
class FrameResult:
    index: int  # frame set index in the stream (0-based, in the order given to ``step``)
    views: list[list[TrackedObject]]  # per view, the objects in it


@dataclass
class _Track:
    tid: int
    view: int
    start: int
    box: torch.Tensor  # (4,) last box, model pixels
    bank: dict = field(default_factory=lambda: {"cond_frame_outputs": {},
                                                "non_cond_frame_outputs": {}})
    lost: int = 0
    gid: int | None = None
    refer_sum: float = 0.0
    refer_n: int = 0
    emb: list = field(default_factory=list)  # this clip's CGCT embeddings

    @property
    def refer(self) -> float:
        return self.refer_sum / max(self.refer_n, 1)


@dataclass
class _ViewFrame:
    """One view's frame in a clip: its encodings and the Candidate Generator's proposals."""

    n: int  # index in the clip's (view, frame) batch
    feats: list  # FPN levels, each (1, C, h, w)
    pos: torch.Tensor  # (1, d, h, w) top-level position encoding
    props: torch.Tensor | None = None  # (K, 4) proposals, model pixels
    refer: torch.Tensor | None = None  # (K,) referring probability
    obj: torch.Tensor | None = None  # (K,) objectness


def assign_proposals(tracks: torch.Tensor, props: torch.Tensor,
                     min_iou: float) -> dict[int, int]:
    """Live tracks of one view to a frame's proposals, one to one.

    Args:
        tracks: ``(n, 4)`` the tracks' last boxes; props: ``(k, 4)`` proposals (xyxy).
        min_iou: pairs with a lower IoU stay unmatched.
    Returns ``{track index: proposal index}``: the assignment maximising total IoU
    (Hungarian), so that in a crowd two tracks never take the same person's proposal.
    """
    if not tracks.shape[0] or not props.shape[0]:
        return {}
    from scipy.optimize import linear_sum_assignment

    iou = pairwise_iou(tracks, props).float().cpu().numpy()
    rows, cols = linear_sum_assignment(-iou)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou}


def _nbytes(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(y) for y in x)
    return 0


def tracked_objects(rows: list[tuple], hw: tuple[int, int], s: int, min_refer: float,
                    keep_masks: bool) -> list[TrackedObject]:
    """The output objects of one view and frame.

    Args:
        rows: the present tracks' ``(track, mask logits (1, 1, h, w), score logit, box)``;
            box: the matched proposal's in model pixels, or None (the mask's box).
        hw: the input frame size; s: the model's square input side.
        min_refer: tracks whose mean referring probability is below it are left out.
        keep_masks: return full-resolution masks (else boxes only).
    """
    out = []
    h, w = hw
    for tr, low, score, box in rows:
        if tr.refer < min_refer:
            continue
        mask = None  # full resolution only where it is returned or gives the box
        if box is None or keep_masks:
            logits = F.interpolate(low, size=(h, w), mode="bilinear",
                                   align_corners=False)[0, 0]
            mask = (logits > 0).cpu().numpy()
        if box is None:  # the mask's box
            ys, xs = np.nonzero(mask)
            if ys.size == 0:
                continue
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        else:  # the matched proposal's box, model pixels -> input pixels
            b = box.float().cpu().numpy() * np.array([w / s, h / s, w / s, h / s])
            x0, y0 = max(0.0, float(b[0])), max(0.0, float(b[1]))
            x1, y1 = min(float(w), float(b[2])), min(float(h), float(b[3]))
            if x1 <= x0 or y1 <= y0:
                continue
        out.append(TrackedObject(
            global_id=int(tr.gid), track_id=tr.tid,
            box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
            score=float(1 / (1 + np.exp(-score))), refer=tr.refer,
            mask=mask if keep_masks else None,
            box_source="mask" if box is None else "proposal"))
    return out


def new_track_candidates(ctx: _ViewFrame, present: list[tuple], kept: int, cfg,
                         refer_threshold: float, objectness_threshold: float) -> list[int]:
    """Proposals of one view that may open tracks: referred and present enough, best
    first, not overlapping a present track or a candidate before them; at most
    ``cfg.max_tracks - kept`` (bounded work per frame)."""
    props = ctx.props
    if props is None or not props.shape[0] or kept >= cfg.max_tracks:
        return []
    ok = (ctx.refer >= refer_threshold) & (ctx.obj >= objectness_threshold)
    order = [j for j in torch.argsort(ctx.refer * ctx.obj, descending=True).tolist()
             if bool(ok[j])]
    taken = [tr.box for tr, *_ in present]
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


def drop_duplicates(present: list[tuple], keep: list[_Track], duplicate_iou: float,
                    ) -> tuple[list[tuple], list[_Track]]:
    """End the younger of two present tracks of a view whose boxes coincide."""
    drop: set[int] = set()
    for a in range(len(present)):
        for b in range(a + 1, len(present)):
            ta, tb = present[a][0], present[b][0]
            if ta.tid in drop or tb.tid in drop:
                continue
            if float(pairwise_iou(ta.box[None], tb.box[None])[0, 0]) >= duplicate_iou:
                drop.add(max(ta.tid, tb.tid))
    if not drop:
        return present, keep
    return ([o for o in present if o[0].tid not in drop],
            [tr for tr in keep if tr.tid not in drop])


def external_proposals(ctx: _ViewFrame, cand, ext: tuple, hw: tuple[int, int], s: int,
                       candidate_generator) -> None:
    """Replace a view-frame's proposals with ``ext = (boxes (K, 4) xyxy input pixels,
    referring probabilities (K,) or None, objectness (K,) or None)``: referring left None
    is scored by ``candidate_generator``'s matching branch on the boxes (row ``ctx.n`` of
    the clip's ``cand``), objectness left None is 1."""
    boxes, refer, obj = ext
    dev = ctx.pos.device
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), device=dev)
    scale = boxes.new_tensor([s / hw[1], s / hw[0], s / hw[1], s / hw[0]])
    boxes = boxes * scale  # input pixels -> the model's square input
    kk = boxes.shape[0]
    if refer is None:
        if cand is None or cand.features is None:
            raise ValueError("external proposals without referring probabilities need "
                             "the model's Candidate Generator to score them")
        sub = output_row(cand, ctx.n)
        ref = candidate_generator.match_boxes(sub, boxes[None])[0].sigmoid()
    else:
        ref = torch.as_tensor(np.asarray(refer, dtype=np.float32).reshape(kk), device=dev)
    ob = boxes.new_ones(kk) if obj is None else torch.as_tensor(
        np.asarray(obj, dtype=np.float32).reshape(kk), device=dev)
    ctx.props, ctx.refer, ctx.obj = boxes, ref.float(), ob


def cgct_embeddings(cgct, enc: dict, views: torch.Tensor | None,
                    queries: list[tuple[int, list]], image: np.ndarray | None = None,
                    s: int = 0) -> list[list[np.ndarray] | None]:
    """CGCT embeddings (Eq. 10-11) of the present tracks on one frame of one view, for each
    of several expressions; all None without CGCT.

    ``queries`` holds, per expression, its row ``n`` of the clip's encoding and its tracks'
    ``(mask logits (1, 1, h, w), box)`` there (box: model pixels of the side-``s`` input,
    or None: the mask's box); an expression with no track gets None. A crop backbone
    (OSNet, attribute net) cuts the objects from the frame ``image`` (H, W, 3) and reads
    every expression's crops in one call: a crop's reading does not depend on the
    expression. Fuse and the view FiLM run per expression (its own view token)."""
    out: list[list[np.ndarray] | None] = [None] * len(queries)
    live = [(e, n, tracks) for e, (n, tracks) in enumerate(queries) if tracks]
    if cgct is None or not live:
        return out
    if cgct.backbone is None:  # masked pools of the expression's own stage features
        pools = [cgct.pool([st[n:n + 1] for st in enc["stages"]],
                           torch.cat([low for low, _ in tracks], 1).sigmoid())
                 for _, n, tracks in live]
    else:
        masks = torch.cat([low for *_, tracks in live for low, _ in tracks], 1).sigmoid()
        boxes = [box for *_, tracks in live for _, box in tracks]
        x = cgct.pool([], masks, *_crops(masks, image, boxes, s))  # (1, O, C)
        pools = list(x.split([len(tracks) for *_, tracks in live], dim=1))
    for (e, n, _), x in zip(live, pools, strict=True):
        vt = None
        if cgct.film is not None and views is not None:
            vt = views.reshape(-1, views.shape[-1])[n:n + 1]
        out[e] = list(cgct.head(x, vt)[0].float().cpu().numpy())  # (O, D)
    return out


def _crops(masks: torch.Tensor, image: np.ndarray, boxes: list, s: int):
    """(crops (1, O, 3, h, w) in [0, 1], boxes (1, O, 4) in mask pixels) of the tracks:
    each at its box (the mask's own where it has none; the whole frame if that is empty)."""
    from raysys.viewsam.osnet_backbone import CROP_SIZE, crop_objects
    from raysys.viewsam.prompts import masks_to_boxes

    side = masks.shape[-1]
    mb = masks_to_boxes((masks[0] - 0.5)[:, None], side).float()  # (O, 4) mask pixels
    mb[(mb[:, 2] <= mb[:, 0]) | (mb[:, 3] <= mb[:, 1])] = torch.tensor(
        [0.0, 0.0, side, side], device=mb.device)
    for o, b in enumerate(boxes):
        if b is not None:
            mb[o] = torch.as_tensor(np.asarray(b, np.float32), device=mb.device) * side / s
    h, w = image.shape[:2]
    img = torch.from_numpy(np.array(image)).to(masks.device).permute(2, 0, 1)[None]
    px = mb * torch.tensor([w / side, h / side, w / side, h / side], device=mb.device)
    return crop_objects(img, px[None], CROP_SIZE) / 255.0, mb[None]
