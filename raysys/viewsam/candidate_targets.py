"""Targets and losses of the Candidate Generator (paper Eq. 14-18), and box IoU.

The dense branch's targets from teacher boxes (:func:`dense_targets`) and the CG's losses
(:func:`candidate_losses`); :mod:`raysys.viewsam.candidate_generator` is the module itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from raysys.viewsam import losses as L

if TYPE_CHECKING:
    from raysys.viewsam.candidate_generator import CandidateGeneratorConfig, CandidateOutput

__all__ = ["pairwise_iou", "dense_targets", "candidate_losses"]


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xyxy boxes ``(..., K, 4)`` x ``(..., M, 4)`` -> ``(..., K, M)``."""
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter).clamp(min=1e-6)


def dense_targets(boxes: torch.Tensor, valid: torch.Tensor, h: int, w: int, stride: int,
                  sigma_ratio: float = 1 / 6) -> dict[str, torch.Tensor]:
    """Dense-branch targets of ``N`` frames with ``M`` boxes each.

    Args:
        boxes: ``(N, M, 4)`` xyxy model pixels; valid: ``(N, M)`` bool.

    Returns dict: ``heat`` ``(N, 1, h, w)`` max over boxes of a Gaussian peaking at 1 on
    the centre cell; ``ctr`` ``(N, 1, h, w)`` FCOS centerness of cell centres (max over the
    boxes holding them) and ``inside`` ``(N, 1, h, w)`` bool; ``cell`` ``(N, M)`` flat
    index of each centre cell; ``size`` / ``offset`` ``(N, M, 2)`` regression targets.
    """
    dt = boxes.dtype
    c = (boxes[..., :2] + boxes[..., 2:]) / 2 / stride  # (N, M, 2) centre in cells
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=1.0) / stride  # (N, M, 2) in cells
    ci = torch.stack([c[..., 0].floor().clamp(0, w - 1), c[..., 1].floor().clamp(0, h - 1)], -1)
    sig = (wh * sigma_ratio).clamp(min=0.5)  # (N, M, 2)
    xs = torch.arange(w, dtype=dt, device=boxes.device)
    ys = torch.arange(h, dtype=dt, device=boxes.device)
    gx = ((xs[None, None] - ci[..., :1]) / sig[..., :1]) ** 2  # (N, M, w)
    gy = ((ys[None, None] - ci[..., 1:]) / sig[..., 1:]) ** 2  # (N, M, h)
    g = torch.exp(-0.5 * (gy[..., :, None] + gx[..., None, :]))  # (N, M, h, w)
    heat = (g * valid[..., None, None]).amax(1, keepdim=True) if boxes.shape[1] else (
        boxes.new_zeros(boxes.shape[0], 1, h, w))
    px = (xs + 0.5) * stride  # cell centres in pixels
    py = (ys + 0.5) * stride
    left = px[None, None, None, :] - boxes[..., 0, None, None]  # (N, M, 1, w)
    right = boxes[..., 2, None, None] - px[None, None, None, :]
    top = py[None, None, :, None] - boxes[..., 1, None, None]  # (N, M, h, 1)
    bottom = boxes[..., 3, None, None] - py[None, None, :, None]
    lr = torch.minimum(left, right) / torch.maximum(left, right).clamp(min=1e-6)
    tb = torch.minimum(top, bottom) / torch.maximum(top, bottom).clamp(min=1e-6)
    inside = (lr > 0) & (tb > 0) & valid[..., None, None]  # (N, M, h, w)
    ctr = torch.where(inside, (lr.clamp(min=0) * tb.clamp(min=0)).sqrt(), torch.zeros_like(g))
    return {"heat": heat, "ctr": ctr.amax(1, keepdim=True) if boxes.shape[1] else heat * 0,
            "inside": inside.any(1, keepdim=True), "cell": (ci[..., 1] * w + ci[..., 0]).long(),
            "size": wh.log(), "offset": c - ci}


def candidate_losses(out: CandidateOutput, boxes: torch.Tensor, valid: torch.Tensor,
                     referred: torch.Tensor, stride: int, cfg: CandidateGeneratorConfig,
                     dense_boxes: torch.Tensor | None = None,
                     dense_valid: torch.Tensor | None = None,
                     teacher_logits: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """CG losses for ``N`` frames (Eq. 14-18).

    Args:
        boxes: ``(N, M, 4)`` teacher boxes (model pixels); valid: ``(N, M)`` bool;
        referred: ``(N, M)`` bool, box belongs to an object the expression refers to.
        dense_boxes, dense_valid: ``(N, A, 4)`` / ``(N, A)`` every labelled object of each
            frame, the targets of the dense branch (heat-map, centerness, box); default: the
            ``M`` boxes. The matching branch always uses ``boxes`` and ``referred``.
        teacher_logits: ``(N, M)`` referring logits of the teacher boxes themselves
            (:meth:`CandidateGenerator.match_boxes`); the matching losses then score them
            with the proposals (valid ones only; target: IoU with the referred boxes).

    Returns dict with ``cg_heatmap``, ``cg_centerness``, ``cg_box``, ``cg_match``,
    ``cg_rank``.
    """
    n, _, h, w = out.heatmap.shape
    db, dv = (boxes, valid) if dense_boxes is None else (dense_boxes, dense_valid)
    tg = dense_targets(db, dv, h, w, stride, cfg.sigma_ratio)
    num_obj = dv.sum().clamp(min=1)
    heat = L.sigmoid_focal_loss(out.heatmap, tg["heat"], reduction="sum") / num_obj
    inside = tg["inside"]  # Eq. 14: focal loss on the centerness of the cells in a box
    ctr = (L.sigmoid_focal_loss(out.centerness[inside], tg["ctr"][inside])
           if bool(inside.any()) else out.centerness.sum() * 0)
    # regression at each valid box's centre cell
    cell = tg["cell"][..., None].expand(-1, -1, 2)  # (N, M, 2)
    size = out.size.flatten(2).transpose(1, 2).gather(1, cell)  # (N, M, 2)
    off = out.offset.flatten(2).transpose(1, 2).gather(1, cell)
    wv = dv[..., None]
    box = (L.smooth_l1_loss(size, tg["size"], weights=wv)
           + L.smooth_l1_loss(off, tg["offset"], weights=wv))
    # matching: soft IoU with the referred boxes of the same frame
    ref_ok = (valid & referred)[:, None, :]  # (N, 1, M)
    iou = (pairwise_iou(out.boxes, boxes) * ref_ok).amax(-1) if boxes.shape[1] else (
        out.refer_logits.detach() * 0)  # (N, K)
    groups = torch.arange(n, device=iou.device)[:, None].expand_as(iou).reshape(-1)
    logits, iou = out.refer_logits.reshape(-1), iou.reshape(-1)
    if teacher_logits is not None and boxes.shape[1]:
        t_iou = (pairwise_iou(boxes, boxes) * ref_ok).amax(-1)  # (N, M): 1 for referred
        t_groups = torch.arange(n, device=iou.device)[:, None].expand_as(t_iou)
        logits = torch.cat([logits, teacher_logits[valid]])
        iou = torch.cat([iou, t_iou[valid]])
        groups = torch.cat([groups, t_groups[valid]])
    y = L.soft_iou_target(iou, cfg.pos_iou, cfg.neg_iou)  # Eq. 15
    match = L.group_balanced_bce(logits, y, groups, positive=iou >= cfg.pos_iou)  # Eq. 16
    # Eq. 17 on the logits: P = y 1 (IoU >= tau_pos), N = y 0 (IoU <= tau_neg), every pair
    rank = L.margin_ranking_loss(logits, iou >= cfg.pos_iou, iou <= cfg.neg_iou,
                                 cfg.rank_margin)
    return {"cg_heatmap": heat, "cg_centerness": ctr, "cg_box": box, "cg_match": match,
            "cg_rank": rank}
