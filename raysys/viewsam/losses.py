"""ViewSAM training losses as pure functions over tensors (no module state).

Paper equations (arXiv 2605.02638, §3.3 and App. C), by the paper's numbers:

* Eq. 13: mask loss = focal + dice, summed (:func:`mask_loss`);
* Eq. 14: the Candidate Generator's dense terms: sigmoid focal losses on the centre heatmap
  and on the centerness map (:func:`sigmoid_focal_loss`, soft targets), smooth-L1 on box
  size and centre offset (:func:`smooth_l1_loss`);
* Eq. 15: the soft matching target ``clip((IoU - tau_neg) / (tau_pos - tau_neg), 0, 1)``
  (:func:`soft_iou_target`);
* Eq. 16: the group-balanced BCE of the matching branch (:func:`group_balanced_bce`);
* Eq. 17: the margin ranking loss over every (positive, negative) pair of matching logits
  (:func:`margin_ranking_loss`); Eq. 18 sums the CG terms
  (:func:`raysys.viewsam.objective.compute_losses`);
* Eq. 22: BAR's BCE on the disjointness label of Eq. 21 (in ``objective``);
* Eq. 12 = Eq. 23: CGCT's consistency loss, squared distances to per-view and global
  identity prototypes (:func:`cgct_loss`). A supervised InfoNCE
  (:func:`infonce_consistency`, SupCon-style, Khosla et al. 2020) is kept behind
  ``CGCTConfig.objective = "infonce"``.

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
    "soft_iou_target",
    "supervised_infonce",
    "infonce_consistency",
    "cgct_loss",
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
    focal_weight: float = 1.0, dice_weight: float = 1.0, alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Mask loss of Eq. 13: ``focal + dice`` per mask, averaged over the weighted masks.

    The focal term is the per-pixel mean of :func:`sigmoid_focal_loss`, the dice term
    :func:`dice_loss`. The paper sums them (weights 1, 1, the defaults); SAM weighs them
    20:1. Args: ``logits``/``targets`` ``(N, H, W)``; ``weights`` ``(N,)`` (e.g. 0 for
    padding slots), default all ones.
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
    """Smooth-L1 (Huber / beta) averaged over the weighted elements (Eq. 14).

    ``0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``. ``weights`` broadcast to
    ``pred``.
    """
    assert pred.shape == target.shape, f"{tuple(pred.shape)} vs {tuple(target.shape)}"
    loss = F.smooth_l1_loss(pred, target.to(pred.dtype), beta=beta, reduction="none")
    if weights is None:
        return loss.mean() if loss.numel() else _zero(pred)
    w = weights.to(pred.dtype).expand_as(loss)
    return (loss * w).sum() / w.sum() if float(w.sum()) > 0 else _zero(pred)


def soft_iou_target(iou: torch.Tensor, tau_pos: float, tau_neg: float) -> torch.Tensor:
    """Soft matching target of Eq. 15: ``clip((IoU - tau_neg) / (tau_pos - tau_neg), 0, 1)``.

    0 at or below ``tau_neg``, 1 at or above ``tau_pos``, linear between.
    """
    if not tau_pos > tau_neg:
        raise ValueError(f"Eq. 15 needs tau_pos > tau_neg, got {tau_pos} and {tau_neg}")
    return ((iou - tau_neg) / (tau_pos - tau_neg)).clamp(0.0, 1.0)


def group_balanced_bce(
    logits: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor,
    pos_threshold: float = 0.5, positive: torch.Tensor | None = None,
) -> torch.Tensor:
    """BCE with soft targets where, inside each group, positives and negatives weigh half each.

    A proposal is positive when its soft target is ``>= pos_threshold``, or where the bool
    ``positive`` says so when given (e.g. IoU >= tau_pos under Eq. 15's targets). In a group
    with both kinds each positive weighs ``1 / (2 n_pos)`` and each negative
    ``1 / (2 n_neg)``; a group with one kind only weighs its members ``1 / n``. The result is
    the mean over groups, so a frame crowded with negatives counts as much as any other
    (Eq. 16).

    Args:
        logits, targets: ``(N,)``; targets in [0, 1] (e.g. Eq. 15's soft targets).
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
    pos = (targets >= pos_threshold if positive is None else positive).to(logits.dtype)
    n_pos = torch.zeros(n_groups, dtype=logits.dtype, device=logits.device).index_add_(0, g, pos)
    n_all = torch.bincount(g, minlength=n_groups).to(logits.dtype)
    n_neg = n_all - n_pos
    both = (n_pos > 0) & (n_neg > 0)  # (G,)
    w_pos = torch.where(both, 0.5 / n_pos.clamp(min=1), 1.0 / n_all)
    w_neg = torch.where(both, 0.5 / n_neg.clamp(min=1), 1.0 / n_all)
    w = pos * w_pos[g] + (1 - pos) * w_neg[g]
    return (bce * w).sum() / n_groups


def margin_ranking_loss(
    scores: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 1.0,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 17: ``1/(|P||N|) sum_{i in P} sum_{j in N} max(0, m - (s_i - s_j))``.

    ``P`` and ``N`` are the positive and negative proposals of the batch (the paper's sets
    derived from pseudo labels; proposals in neither, e.g. ``tau_neg < IoU < tau_pos``,
    take no part), ``s`` their matching logits.

    Args:
        scores: ``(N,)`` matching logits; positive, negative: ``(N,)`` bool, disjoint.
        margin: ``m`` (the paper gives no value).
        groups: ``(N,)`` optional; pairs only within a group (e.g. a frame). The paper pairs
            every positive with every negative: None.
    """
    assert scores.shape == positive.shape == negative.shape and scores.dim() == 1
    pair = positive[:, None] & negative[None, :]
    if groups is not None:
        assert groups.shape == scores.shape
        pair = pair & (groups[:, None] == groups[None, :])
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


def infonce_consistency(
    emb: torch.Tensor, ids: torch.Tensor, views: torch.Tensor, groups: torch.Tensor | None = None,
    temperature: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Intra- and inter-view supervised InfoNCE (``CGCTConfig.objective = "infonce"``; not
    the paper's Eq. 12/23, see :func:`cgct_loss`).

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


def cgct_loss(
    emb: torch.Tensor, ids: torch.Tensor, views: torch.Tensor, groups: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of CGCT's consistency loss (Eq. 12 = Eq. 23), as the paper writes them::

        L = sum_g [ sum_i sum_{(t,k) in T_g^i} ||z_{t,i}^k - zbar_g^i||^2
                    + lambda sum_i ||zbar_g^i - zbar_g||^2 ]

    with ``zbar_g^i`` the mean of identity ``g``'s embeddings in view ``i`` and ``zbar_g`` the
    mean of all its embeddings across views ("the mean embeddings over instances"). Sums, not
    means, as written. The caller forms ``intra + lambda * inter``.

    The objective has no repulsive term: it is minimised (0) when every embedding is equal,
    so on its own it can collapse; nothing here prevents that.

    Args:
        emb: ``(N, D)``; ids: ``(N,)`` global id (negative = unknown, left out);
        views: ``(N,)`` view of each row; groups: ``(N,)`` clip of each row (ids of different
            clips are different identities), default one clip.

    Returns:
        ``(intra, inter)`` 0-d tensors.
    """
    n = emb.shape[0]
    assert ids.shape == views.shape == (n,), "ids, views must be (N,)"
    keep = ids >= 0
    if not bool(keep.any()):
        return _zero(emb), _zero(emb)
    grp = torch.zeros_like(ids) if groups is None else groups
    emb = emb[keep]
    _, gid = torch.unique(torch.stack([grp[keep], ids[keep]], 1), dim=0, return_inverse=True)
    _, gv = torch.unique(torch.stack([gid, views[keep]], 1), dim=0, return_inverse=True)

    def means(index: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        k = int(index.max()) + 1
        tot = x.new_zeros(k, x.shape[1]).index_add_(0, index, x)
        return tot / torch.bincount(index, minlength=k).to(x.dtype)[:, None]

    view_proto = means(gv, emb)  # (G*V present, D): zbar_g^i
    glob = means(gid, emb)  # (G, D): zbar_g, over instances
    intra = ((emb - view_proto[gv]) ** 2).sum()
    gid_of_gv = torch.zeros(view_proto.shape[0], dtype=gid.dtype, device=gid.device)
    gid_of_gv[gv] = gid
    inter = ((view_proto - glob[gid_of_gv]) ** 2).sum()
    return intra, inter
