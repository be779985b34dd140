"""ViewSAM training losses as pure functions over tensors (no module state).

Paper equations (arXiv 2605.02638, §3.3 and App. C): mask loss = focal + dice (Eq. 13);
the Candidate Generator's dense branch uses a sigmoid focal loss on the centre heatmap and
smooth-L1 on box size / centre offset (Eq. 15-16), its referring branch a group-balanced
BCE against soft IoU targets plus a margin ranking loss (Eq. 17-18); BAR's bias head is a
BCE on the disjointness label (Eq. 21); CGCT's consistency loss (Eq. 23) is written here
as a supervised InfoNCE (SupCon-style, Khosla et al. 2020) split into an intra-view and an
inter-view term.

Conventions: ``logits`` are pre-sigmoid; reductions return a 0-d tensor; an empty selection
gives ``0 * logits.sum()`` so that the graph (and DDP's used-parameter bookkeeping) stays
connected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "sigmoid_focal_loss",
    "dice_loss",
    "mask_loss",
    "smooth_l1_loss",
    "group_balanced_bce",
    "margin_ranking_loss",
    "supervised_infonce",
    "consistency_loss",
]


def _zero(x: torch.Tensor) -> torch.Tensor:
    return x.sum() * 0.0


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017), elementwise; ``targets`` may be soft in [0, 1].

    ``FL = -a_t (1 - p_t)^gamma log(p_t)`` with ``p_t = p y + (1 - p)(1 - y)`` and
    ``a_t = alpha y + (1 - alpha)(1 - y)``; ``alpha < 0`` switches the class weight off.

    Args:
        logits, targets: same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    assert logits.shape == targets.shape, f"{tuple(logits.shape)} vs {tuple(targets.shape)}"
    targets = targets.to(logits.dtype)
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft dice loss per mask: ``1 - (2 sum(p t) + eps) / (sum p + sum t + eps)``.

    Args:
        logits, targets: ``(N, H, W)`` (or any ``(N, ...)``).

    Returns:
        ``(N,)`` losses.
    """
    assert logits.shape == targets.shape, f"{tuple(logits.shape)} vs {tuple(targets.shape)}"
    p = logits.sigmoid().flatten(1)
    t = targets.to(p.dtype).flatten(1)
    return 1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)


def mask_loss(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None,
    focal_weight: float = 20.0, dice_weight: float = 1.0, alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Mask loss of Eq. 13: ``w_f * focal + w_d * dice``, averaged over the weighted masks.

    The 20:1 focal:dice ratio is SAM's. Args: ``logits``/``targets`` ``(N, H, W)``;
    ``weights`` ``(N,)`` (e.g. 0 for padding slots), default all ones.
    """
    assert logits.dim() == 3, f"mask logits must be (N, H, W), got {tuple(logits.shape)}"
    w = logits.new_ones(logits.shape[0]) if weights is None else weights.to(logits.dtype)
    if logits.shape[0] == 0 or float(w.sum()) == 0.0:
        return _zero(logits)
    focal = sigmoid_focal_loss(logits, targets, alpha, gamma, reduction="none").flatten(1)
    per_mask = focal_weight * focal.mean(1) + dice_weight * dice_loss(logits, targets)
    return (per_mask * w).sum() / w.sum()


def smooth_l1_loss(
    pred: torch.Tensor, target: torch.Tensor, beta: float = 1.0,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Smooth-L1 (Huber / beta) averaged over the weighted elements (Eq. 16).

    ``0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``. ``weights`` broadcast to
    ``pred``.
    """
    assert pred.shape == target.shape, f"{tuple(pred.shape)} vs {tuple(target.shape)}"
    loss = F.smooth_l1_loss(pred, target.to(pred.dtype), beta=beta, reduction="none")
    if weights is None:
        return loss.mean() if loss.numel() else _zero(pred)
    w = weights.to(pred.dtype).expand_as(loss)
    return (loss * w).sum() / w.sum() if float(w.sum()) > 0 else _zero(pred)


def group_balanced_bce(
    logits: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor,
    pos_threshold: float = 0.5,
) -> torch.Tensor:
    """BCE with soft targets where, inside each group, positives and negatives weigh half each.

    A proposal is positive when its soft target is ``>= pos_threshold``. In a group with both
    kinds each positive weighs ``1 / (2 n_pos)`` and each negative ``1 / (2 n_neg)``; a group
    with one kind only weighs its members ``1 / n``. The result is the mean over groups, so a
    frame crowded with negatives counts as much as any other (Eq. 17).

    Args:
        logits, targets: ``(N,)``; targets in [0, 1] (e.g. IoU with the referred boxes).
        groups: ``(N,)`` integer group of each element (e.g. its frame).
    """
    assert logits.shape == targets.shape == groups.shape and logits.dim() == 1, (
        f"need equal (N,) shapes, got {tuple(logits.shape)}, {tuple(targets.shape)}, "
        f"{tuple(groups.shape)}")
    if logits.numel() == 0:
        return _zero(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    _, g = torch.unique(groups, return_inverse=True)  # (N,) dense group index
    n_groups = int(g.max()) + 1
    pos = (targets >= pos_threshold).to(logits.dtype)
    n_pos = torch.zeros(n_groups, dtype=logits.dtype, device=logits.device).index_add_(0, g, pos)
    n_all = torch.bincount(g, minlength=n_groups).to(logits.dtype)
    n_neg = n_all - n_pos
    both = (n_pos > 0) & (n_neg > 0)  # (G,)
    w_pos = torch.where(both, 0.5 / n_pos.clamp(min=1), 1.0 / n_all)
    w_neg = torch.where(both, 0.5 / n_neg.clamp(min=1), 1.0 / n_all)
    w = pos * w_pos[g] + (1 - pos) * w_neg[g]
    return (bce * w).sum() / n_groups


def margin_ranking_loss(
    scores: torch.Tensor, positive: torch.Tensor, groups: torch.Tensor, margin: float = 0.2,
) -> torch.Tensor:
    """Mean over same-group (positive, negative) pairs of ``max(0, margin - (s_p - s_n))``.

    Referred proposals must outscore the others of their frame by ``margin`` (Eq. 18).

    Args:
        scores: ``(N,)`` matching scores; positive: ``(N,)`` bool; groups: ``(N,)``.
    """
    assert scores.shape == positive.shape == groups.shape and scores.dim() == 1
    pair = (groups[:, None] == groups[None, :]) & positive[:, None] & ~positive[None, :]
    if not bool(pair.any()):
        return _zero(scores)
    gap = margin - (scores[:, None] - scores[None, :])  # (N, N): row positive, column negative
    return gap.clamp(min=0)[pair].mean()


def supervised_infonce(
    emb: torch.Tensor, ids: torch.Tensor, pair_mask: torch.Tensor, temperature: float = 0.1,
) -> torch.Tensor:
    """Supervised InfoNCE over the candidate pairs allowed by ``pair_mask``.

    For an anchor ``i`` with candidates ``C(i) = {j != i : pair_mask[i, j]}`` and positives
    ``P(i) = {j in C(i) : ids[j] == ids[i]}``:
    ``l_i = -1/|P(i)| sum_{p in P(i)} log(exp(s_ip / tau) / sum_{j in C(i)} exp(s_ij / tau))``
    with ``s`` the dot product of (already normalised) embeddings; the loss is the mean of
    ``l_i`` over anchors with at least one positive (0 when there is none).

    Args:
        emb: ``(N, D)``; ids: ``(N,)`` (negative = unknown, never an anchor or a positive);
        pair_mask: ``(N, N)`` bool.
    """
    n = emb.shape[0]
    assert ids.shape == (n,) and pair_mask.shape == (n, n), "ids (N,), pair_mask (N, N)"
    eye = torch.eye(n, dtype=torch.bool, device=emb.device)
    cand = pair_mask & ~eye
    known = ids >= 0
    pos = cand & (ids[:, None] == ids[None, :]) & known[:, None] & known[None, :]
    anchors = pos.any(1)
    if not bool(anchors.any()):
        return _zero(emb)
    # rows restricted to anchors: each has a finite candidate, so no -inf - -inf NaNs
    sim = emb[anchors] @ emb.t() / temperature  # (A, N)
    sim = sim.masked_fill(~cand[anchors], float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = pos[anchors]
    log_prob = log_prob.masked_fill(~pos, 0.0)
    return (-log_prob.sum(1) / pos.sum(1)).mean()


def consistency_loss(
    emb: torch.Tensor, ids: torch.Tensor, views: torch.Tensor, groups: torch.Tensor | None = None,
    temperature: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CGCT intra- and inter-view consistency terms (Eq. 23).

    Intra-view: anchors and candidates in the same view (other frames / other objects);
    inter-view: candidates in the other views. Same global id = positive, different id =
    negative; pairs never cross ``groups`` (clips: ids of different clips are unrelated).

    Returns:
        ``(intra, inter)`` 0-d tensors (see :func:`supervised_infonce`).
    """
    same_group = (torch.ones_like(ids, dtype=torch.bool)[:, None] if groups is None
                  else groups[:, None] == groups[None, :])
    same_view = views[:, None] == views[None, :]
    intra = supervised_infonce(emb, ids, same_group & same_view, temperature)
    inter = supervised_infonce(emb, ids, same_group & ~same_view, temperature)
    return intra, inter
