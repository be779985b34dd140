"""ViewSAM's training objective for a clip: the loss terms of :mod:`raysys.viewsam.losses`
assembled over the slots of a forward pass and weighted into the total: the mask loss
(Eq. 13), the Candidate Generator's terms (Eq. 14-18), BAR's BCE (Eq. 22) and CGCT's
consistency loss (Eq. 12 = Eq. 23), as :meth:`ViewSAM.losses` lists them. The paper gives
no weights between these terms; they are ``LossConfig``'s (1 by default)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raysys.viewsam import losses as L
from raysys.viewsam.candidate_generator import candidate_losses
from raysys.viewsam.data import ClipTargets, ViewSAMOutput

__all__ = ["slot_masks", "candidate_loss_terms", "compute_losses"]


def slot_masks(targets: ClipTargets, teacher_boxes: torch.Tensor, index: torch.Tensor,
                hw: tuple[int, int]) -> torch.Tensor:
    """Target masks of the slots ``(B, V, T, O, H, W)``; teacher boxes filled in if no masks."""
    b, v, t, m = teacher_boxes.shape[:4]
    o = index.shape[1]
    h, w = hw
    if m == 0:
        return teacher_boxes.new_zeros(b, v, t, o, h, w)
    g = index[:, None, None, :].expand(b, v, t, o)
    if targets.masks is not None:
        g6 = g[..., None, None].expand(-1, -1, -1, -1, h, w)
        return targets.masks.gather(3, g6).float()
    bx = teacher_boxes.gather(3, g[..., None].expand(-1, -1, -1, -1, 4))  # (B, V, T, O, 4)
    ys = torch.arange(h, device=bx.device, dtype=bx.dtype) + 0.5
    xs = torch.arange(w, device=bx.device, dtype=bx.dtype) + 0.5
    iny = (ys >= bx[..., 1:2]) & (ys < bx[..., 3:4])  # (B, V, T, O, H)
    inx = (xs >= bx[..., 0:1]) & (xs < bx[..., 2:3])  # (B, V, T, O, W)
    return (iny[..., :, None] & inx[..., None, :]).float()


def candidate_loss_terms(model, cand, targets: ClipTargets, tb: torch.Tensor,
                         tv: torch.Tensor, hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The CG loss terms of a clip: teacher boxes ``tb`` ``(B, V, T, M, 4)`` (input pixels,
    visible ``tv``) scaled to model pixels, referred flags broadcast over views and frames;
    the dense branch learns every labelled object of the frame (``targets.dense_boxes``)
    where the targets carry them; the matching branch also scores the teacher boxes
    (``CandidateGeneratorConfig.match_teacher_boxes``)."""
    b, v, t, m = tv.shape
    h, w = hw
    s = model.image_size
    scale = torch.tensor([s / w, s / h, s / w, s / h], device=tb.device)
    ref = targets.referred[:, None, None].expand(b, v, t, m)
    db = dv = None
    if targets.dense_boxes is not None:  # every labelled object of the frame (dense branch)
        a = targets.dense_boxes.shape[3]
        db = (targets.dense_boxes.to(tb.device) * scale).reshape(-1, a, 4)
        dv = targets.dense_visible.to(tb.device).reshape(-1, a)
    mb = (tb * scale).reshape(-1, m, 4)
    cg, ccfg = model.candidate_generator, model.cfg.candidate_generator
    tl = cg.match_boxes(cand, mb) if ccfg.match_teacher_boxes and m and \
        cand.features is not None else None
    return candidate_losses(cand, mb, tv.reshape(-1, m), ref.reshape(-1, m),
                             cg.stride(model.sam2.backbone_stride), ccfg, db, dv, tl)


def compute_losses(model, out: ViewSAMOutput, targets: ClipTargets,
                   ) -> dict[str, torch.Tensor]:
    """See :meth:`ViewSAM.losses`.

    BAR (Eq. 22): BCE of each prompted slot's frame-level ``p_bias`` against the slot's
    disjointness label (Eq. 21) over frames after the first (the first has no memory), mean
    over those slots. CGCT (Eq. 12/23, ``CGCTConfig.objective="paper"``): ``intra + λ inter``
    over the visible slots, identities = (clip, global id); with ``"infonce"`` the former
    supervised InfoNCE, ``λ (intra + inter_weight inter)``.
    """
    cfg, lc = model.cfg, model.cfg.loss
    b, v, t, o, h, w = out.mask_logits.shape
    targets = targets.to(out.mask_logits.device)
    tb, tv = model.teacher(targets)  # (B, V, T, M, 4), (B, V, T, M)
    res: dict[str, torch.Tensor] = {}
    tm = slot_masks(targets, tb, out.slot_index, (h, w))
    valid = out.slot_valid[:, None, None].expand(b, v, t, o)
    res["mask"] = L.mask_loss(out.mask_logits.flatten(0, 3), tm.flatten(0, 3),
                              valid.flatten(), lc.mask_focal, lc.mask_dice)
    total = lc.mask * res["mask"]
    if out.candidates is not None:
        cg = candidate_loss_terms(model, out.candidates, targets, tb, tv, (h, w))
        res |= cg
        total = total + sum(getattr(lc, k) * val for k, val in cg.items())
    if model.bar is not None:
        sel = out.prompted & valid & (torch.arange(t, device=valid.device) > 0)[None, None, :, None]
        res["bar"] = (F.binary_cross_entropy_with_logits(out.bias_logits[sel], out.bias_labels[sel])
                      if bool(sel.any()) else out.bias_logits.sum() * 0)
        total = total + lc.bar * res["bar"]
    if model.cgct is not None and cfg.use_consistency_loss:
        m = tv.shape[3]
        g = out.slot_index[:, None, None].expand(b, v, t, o)
        vis = (tv.gather(3, g) if m else torch.zeros_like(valid)) & valid  # (B, V, T, O)
        grid = torch.meshgrid(torch.arange(b), torch.arange(v), torch.arange(t), torch.arange(o),
                              indexing="ij")
        groups, views = grid[0].to(vis.device)[vis], grid[1].to(vis.device)[vis]
        ids = out.slot_ids[:, None, None].expand(b, v, t, o)[vis]
        if cfg.cgct.objective == "infonce":
            intra, inter = L.infonce_consistency(out.embeddings[vis], ids, views, groups,
                                                 cfg.cgct.temperature)
            cons = cfg.lam * (intra + cfg.cgct.inter_weight * inter)
        else:  # the paper's Eq. 12 / 23
            intra, inter = L.cgct_loss(out.embeddings[vis], ids, views, groups)
            cons = intra + cfg.lam * inter
        res["consistency_intra"], res["consistency_inter"] = intra, inter
        total = total + cons
    res["total"] = total
    return res
