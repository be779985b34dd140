"""Which objects ViewSAM tracks in a clip (slots) and which box prompts SAM2 gets per frame.

Training (targets given): slot ``o`` of sample ``b`` is its ``o``-th referred object, the
same global id in every view, so the cross-view consistency loss has positives. Its box
prompt in a (view, frame) where the teacher sees it is, by ``prompt_source``:
``"candidates"`` a CG proposal matched to the teacher box (CG boxes prompt SAM2, as in the
paper), or ``"teacher"`` the teacher box itself. A proposal replaces the teacher box only
when it lies on the teacher's object (:func:`match_proposals`): its IoU with the teacher box
is at least ``iou_floor`` and no other labelled box of the frame overlaps it more; else the
teacher box prompts, so a step never learns one object's mask from another's box. Without
CG (ablation) the
teacher box prompts frame 0 only and SAM2's memory carries the object on; without CG and
with ``"teacher"`` the teacher box prompts every frame where the object is visible.

Inference does not come here: it is the online tracker's (:mod:`raysys.tracking`), which
opens and prompts tracks from the Candidate Generator's proposals frame by frame.

Layout: SAM2 batches objects, so per frame ``N = B * V * O`` rows ordered (b, v, o).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from raysys.viewsam.candidate_generator import pairwise_iou

__all__ = ["SlotPlan", "plan_slots", "match_proposals", "frame_prompts", "masks_to_boxes",
           "PROMPT_IOU_FLOOR"]

# A proposal counts as on the teacher's object at IoU >= 0.5 with its box: the usual
# detection criterion for "the same object" (PASCAL VOC / COCO AP50; the proposal recall the
# report's diagnostics measure), and, for two boxes of one size, IoU >= 0.5 means they share
# at least two thirds of their area, so the proposal's centre lies inside the teacher box.
PROMPT_IOU_FLOOR = 0.5


@dataclass
class SlotPlan:
    index: torch.Tensor  # (B, O) index into the targets' objects (0 for padding)
    valid: torch.Tensor  # (B, O) bool
    ids: torch.Tensor  # (B, O) global ids, -1 unknown
    boxes: torch.Tensor  # (B*V, T, O, 4) model-pixel prompts planned ahead
    has_box: torch.Tensor  # (B*V, T, O) bool

    @property
    def num_slots(self) -> int:
        return self.index.shape[1]


def _referred_slots(referred: torch.Tensor, ids: torch.Tensor):
    ref = referred & (ids >= 0)  # (B, M)
    counts = ref.sum(1)  # (B,)
    o = max(1, int(counts.max()) if ref.numel() else 0)
    order = torch.argsort((~ref).to(torch.int8), dim=1, stable=True)  # referred first
    if order.shape[1] < o:  # M == 0
        order = order.new_zeros(ref.shape[0], o)
    order = order[:, :o]
    valid = torch.arange(o, device=ref.device)[None] < counts[:, None]
    index = torch.where(valid, order, torch.zeros_like(order))
    slot_ids = torch.where(valid, ids.gather(1, index) if ids.shape[1] else index, -1)
    return index, valid, slot_ids


@torch.no_grad()
def match_proposals(own: torch.Tensor, labelled: torch.Tensor, labelled_ok: torch.Tensor,
                    cand: torch.Tensor, iou_floor: float = PROMPT_IOU_FLOOR,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The proposal that may stand in for each teacher box.

    Args:
        own: ``(N, O, 4)`` teacher boxes of the slots; labelled: ``(N, L, 4)`` every labelled
            box of the frame (the slots' own among them or not), ``labelled_ok`` ``(N, L)``
            bool; cand: ``(N, K, 4)`` proposals. One coordinate frame for all.

    Returns:
        ``(boxes (N, O, 4), use (N, O) bool)``: the proposal of highest IoU with the slot's
        box, and whether it may prompt: IoU >= ``iou_floor`` and no labelled box overlaps
        it more than the slot's own (a tie keeps it).
    """
    iou = pairwise_iou(own, cand)  # (N, O, K)
    best_iou, best = iou.max(-1)
    boxes = cand.gather(1, best[..., None].expand(-1, -1, 4))  # (N, O, 4)
    other = pairwise_iou(boxes, labelled).masked_fill(~labelled_ok[:, None], -1.0)
    closest_other = other.amax(-1) if labelled.shape[1] else torch.full_like(best_iou, -1.0)
    return boxes, (best_iou >= iou_floor) & (best_iou >= closest_other)


@torch.no_grad()
def plan_slots(targets, teacher, cand_boxes: torch.Tensor | None, *,
               shape: tuple[int, int, int], scale: torch.Tensor,
               prompt_source: str, iou_floor: float = PROMPT_IOU_FLOOR) -> SlotPlan:
    """Slots and planned prompts of a clip.

    Args:
        targets: :class:`ClipTargets`; teacher: ``teacher(targets) -> (boxes, visible)``.
        cand_boxes: ``(B*V, T, K, 4)`` CG proposals (model px) or None without CG.
        shape: ``(B, V, T)``; scale: ``(4,)`` input px -> model px factors.
        iou_floor: a proposal replaces a teacher box at IoU >= this (and when no other
            labelled box, of the teacher or of ``targets.dense_boxes``, overlaps it more).
    """
    b, v, t = shape
    dev = scale.device
    index, valid, ids = _referred_slots(targets.referred, targets.ids)
    o = index.shape[1]
    t_boxes, t_vis = teacher(targets)  # (B, V, T, M, 4), (B, V, T, M)
    if t_boxes.shape[3] == 0:
        t_boxes = t_boxes.new_zeros(b, v, t, 1, 4)
        t_vis = t_vis.new_zeros(b, v, t, 1)
    g = index[:, None, None, :].expand(b, v, t, o)
    sb = t_boxes.gather(3, g[..., None].expand(-1, -1, -1, -1, 4)) * scale  # (B, V, T, O, 4)
    sv = t_vis.gather(3, g) & valid[:, None, None]  # (B, V, T, O)
    sb, sv = sb.reshape(b * v, t, o, 4), sv.reshape(b * v, t, o)
    if cand_boxes is None and prompt_source == "candidates":  # the CG ablation
        sv = sv & (torch.arange(t, device=dev) == 0)[None, :, None]
    elif cand_boxes is None:  # "teacher" without CG: teacher boxes on every frame
        pass
    elif prompt_source == "candidates" and cand_boxes.shape[2] > 0:
        lab, ok = _labelled_boxes(targets, t_boxes, t_vis, scale)  # (BV, T, L, 4), (BV, T, L)
        pb, use = match_proposals(sb.flatten(0, 1), lab.flatten(0, 1), ok.flatten(0, 1),
                                  cand_boxes.flatten(0, 1), iou_floor)
        sb = torch.where(use.reshape(b * v, t, o)[..., None], pb.reshape(b * v, t, o, 4), sb)
    return SlotPlan(index=index, valid=valid, ids=ids, boxes=sb, has_box=sv)


def _labelled_boxes(targets, t_boxes, t_vis, scale):
    """Every labelled box of each frame in model px: the teacher's ``M`` and, where the
    targets carry them, the dense boxes: ``(B*V, T, L, 4)`` and ``(B*V, T, L)`` bool."""
    b, v, t = t_boxes.shape[:3]
    boxes, ok = [t_boxes], [t_vis]
    if getattr(targets, "dense_boxes", None) is not None:
        boxes.append(targets.dense_boxes.to(t_boxes))
        ok.append(targets.dense_visible.to(t_vis.device))
    lab = torch.cat(boxes, 3) * scale
    return lab.reshape(b * v, t, -1, 4), torch.cat(ok, 3).reshape(b * v, t, -1).bool()


def masks_to_boxes(mask_logits: torch.Tensor, image_size: int) -> torch.Tensor:
    """``(N, 1, h, w)`` logits -> ``(N, 4)`` xyxy model-px boxes of the ``> 0`` region
    (zeros for an empty mask)."""
    n, _, h, w = mask_logits.shape
    m = mask_logits[:, 0] > 0
    ys = torch.arange(h, device=m.device, dtype=torch.float32)
    xs = torch.arange(w, device=m.device, dtype=torch.float32)
    rows, cols = m.any(2), m.any(1)  # (N, h), (N, w)
    big = float(max(h, w))
    x0 = torch.where(cols, xs, big).amin(1)
    x1 = torch.where(cols, xs + 1, -1.0).amax(1)
    y0 = torch.where(rows, ys, big).amin(1)
    y1 = torch.where(rows, ys + 1, -1.0).amax(1)
    box = torch.stack([x0 / w, y0 / h, x1 / w, y1 / h], dim=1) * image_size
    return torch.where(m.flatten(1).any(1)[:, None], box, torch.zeros_like(box))


def frame_prompts(plan: SlotPlan, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Box prompts of frame ``t``: ``(boxes (N, 4), has_box (N,))``, rows (b, v, o)."""
    return plan.boxes[:, t].reshape(-1, 4), plan.has_box[:, t].reshape(-1)
