"""Bias-aware Recalibration, BAR (paper Eq. 8-9; its supervision, App. C.3, Eq. 19-22).

SAM2's memory makes a tracker stick to what it saw; under a distractor that partially
matches the expression the memory-guided mask drifts. BAR runs the SAM2 mask decoder twice
on the same box prompt: on the post-memory-attention features ``F^b`` ("biased", Eq. 19) and
on the pre-memory features ``F^u`` ("unbiased": the frame's own features plus SAM2's
no-memory embedding, Eq. 20). For each run ``s in {u, b}`` and each object ``k`` of the frame
(Eq. 8)::

    o_s^k   = Norm(sum_x F^s(x) M^{k,s}(x) / sum_x M^{k,s}(x))     masked average pooling
    a_s^k   = softmax_k <o_s^k, t_R>                                over the frame's objects
    tau_s   = Norm(sum_k a_s^k o_s^k)

with ``M^{k,s}`` the run's soft mask (sigmoid of its logits) and ``t_R`` the referring token.
A learnable [BIA] token self-attends with ``t_R``, ``tau_u`` and ``tau_b`` and a head ``phi``
reads the bias probability off it; the output mask of every object of the frame is (Eq. 9)::

    p_bias = phi(SA([BIA], t_R, tau_u, tau_b)),   M^k = (1 - p_bias) M^{k,b} + p_bias M^{k,u}

(on logits). ``Norm`` is L2 normalisation (the inner product of Eq. 8 is then a cosine).
Choices where the paper is silent: ``t_R`` is projected to the feature width by a Linear;
the three non-[BIA] tokens carry a learned type embedding (self-attention is otherwise
blind to which of ``tau_u``/``tau_b`` is which); the masks are detached before pooling, so
BAR's loss does not move the masks it judges.

Supervision (Eq. 21-22) needs no labels: an object is labelled biased when its two binary
masks (logit > 0) are disjoint; BAR's probability is trained with BCE against that label
(:func:`bias_labels`, :func:`raysys.viewsam.objective.compute_losses`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from raysys.viewsam.cgct import masked_average_pool

__all__ = ["BARConfig", "BiasAwareRecalibration", "BAROutput", "bias_labels",
           "referring_summary"]


@dataclass(frozen=True)
class BARConfig:
    num_layers: int = 2  # self-attention layers over [BIA, t_R, tau_u, tau_b] (Eq. 9)
    num_heads: int = 8  # attention heads (d_model must divide by it)
    mlp_ratio: float = 2.0  # feed-forward width / d_model in those layers


@dataclass
class BAROutput:
    mask_logits: torch.Tensor  # (N, 1, h, w) recalibrated mask logits (Eq. 9)
    p_bias: torch.Tensor  # (N,) probability that the memory-guided mask is biased (per frame)
    bias_logit: torch.Tensor  # (N,) its logit (for the BCE of Eq. 22)


def referring_summary(obj: torch.Tensor, text_ref: torch.Tensor, groups: torch.Tensor,
                      ) -> torch.Tensor:
    """Eq. 8 after the pooling: ``tau = Norm(sum_k softmax_k(<o^k, t_R>) o^k)`` per group.

    Args:
        obj: ``(N, d)`` L2-normalised object tokens ``o^k``.
        text_ref: ``(N, d)`` the referring token of each row (the same within a group).
        groups: ``(N,)`` integer frame of each row; the softmax runs over a group's rows.

    Returns:
        ``(N, d)``: each row's frame summary ``tau`` (equal within a group).
    """
    n = obj.shape[0]
    assert text_ref.shape == obj.shape and groups.shape == (n,), "obj, text_ref (N, d); groups (N,)"
    logit = (obj * text_ref).sum(-1)  # (N,)
    same = groups[:, None] == groups[None, :]  # (N, N)
    alpha = logit[None, :].expand(n, n).masked_fill(~same, float("-inf")).softmax(-1)
    return F.normalize(alpha @ obj, dim=-1)


class BiasAwareRecalibration(nn.Module):
    """Referring-aware pooling (Eq. 8), [BIA] self-attention and mask fusion (Eq. 9).

    Args:
        dim: width of the features ``F^u``, ``F^b`` (SAM2's d_model).
        cfg: component config.
        text_dim: width of the referring token ``t_R`` (default ``dim``).
    """

    def __init__(self, dim: int, cfg: BARConfig, text_dim: int | None = None) -> None:
        super().__init__()
        if dim % cfg.num_heads:
            raise ValueError(f"BAR width {dim} must divide by num_heads {cfg.num_heads}")
        self.text_proj = nn.Linear(text_dim or dim, dim)  # t_R in the feature space
        self.bia = nn.Parameter(torch.zeros(1, 1, dim))  # the [BIA] token
        self.type_embed = nn.Parameter(torch.zeros(1, 3, dim))  # t_R / tau_u / tau_b
        nn.init.trunc_normal_(self.bia, std=0.02)
        nn.init.trunc_normal_(self.type_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, cfg.num_heads, int(dim * cfg.mlp_ratio),
                                           dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(),
                                  nn.Linear(dim, 1))  # phi (before the sigmoid)

    def forward(self, feat_mem: torch.Tensor, feat_free: torch.Tensor, mask_mem: torch.Tensor,
                mask_free: torch.Tensor, text_ref: torch.Tensor,
                groups: torch.Tensor | None = None) -> BAROutput:
        """Args:
            feat_mem, feat_free: ``(N, d, h, w)`` post- and pre-memory-attention features
                (``F^b``, ``F^u``) of each object row.
            mask_mem, mask_free: ``(N, 1, H, W)`` the two runs' mask logits.
            text_ref: ``(N, d_t)`` the referring token ``t_R`` of each row.
            groups: ``(N,)`` frame of each row (Eq. 8's softmax over objects runs within a
                frame); default: every row is its own frame.

        Returns ``p_bias`` per frame, broadcast to its rows, and the fused masks.
        """
        n = feat_mem.shape[0]
        assert feat_free.shape == feat_mem.shape, "feature shapes differ"
        assert mask_mem.shape == mask_free.shape and mask_mem.shape[:2] == (n, 1), "mask shapes"
        if groups is None:
            groups = torch.arange(n, device=feat_mem.device)
        t_r = self.text_proj(text_ref)  # (N, d)
        taus = []
        for feat, mask in ((feat_free, mask_free), (feat_mem, mask_mem)):  # s = u, b
            o = F.normalize(masked_average_pool(feat, mask.detach().sigmoid())[:, 0], dim=-1)
            taus.append(referring_summary(o, t_r, groups))
        seq = torch.stack([t_r, *taus], 1) + self.type_embed  # (N, 3, d)
        seq = torch.cat([self.bia.expand(n, 1, -1), seq], 1)  # (N, 4, d): [BIA], t_R, tau_u, tau_b
        logit = self.head(self.encoder(seq)[:, 0]).squeeze(-1)  # (N,), equal within a frame
        p = logit.sigmoid()
        w = p[:, None, None, None]
        fused = (1 - w) * mask_mem + w * mask_free  # Eq. 9
        return BAROutput(mask_logits=fused, p_bias=p, bias_logit=logit)


@torch.no_grad()
def bias_labels(mask_mem: torch.Tensor, mask_free: torch.Tensor) -> torch.Tensor:
    """Disjointness label (Eq. 21): 1 where ``(M_mem > 0) ∩ (M_free > 0)`` is empty, else 0.

    Two masks that share one pixel are not biased; an empty mask is disjoint from anything.
    Args: mask logits ``(N, ...)``; returns ``(N,)`` float.
    """
    a, b = (mask_mem > 0).flatten(1), (mask_free > 0).flatten(1)
    return (~(a & b).any(1)).float()
