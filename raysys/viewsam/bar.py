"""Bias-aware Recalibration, BAR (paper Eq. 8-9, 19-22).

SAM2's memory makes a tracker stick to what it saw; under a distractor that partially
matches the expression the memory-guided mask drifts. BAR runs the SAM2 mask decoder twice
on the same box prompt: on memory-conditioned features (``M_mem``) and on memory-free
features (``M_free``, the frame's own features plus SAM2's no-memory embedding). A learnable
[BIA] token self-attends with the two object tokens of the decoder (Eq. 8) and predicts the
probability that the memory is biased, ``p_bias``; the output mask is recalibrated
(Eq. 9): ``M = (1 - p_bias) M_mem + p_bias M_free`` (on logits).

Supervision (Eq. 19-22) needs no labels: a frame is "biased" when the two masks disagree,
i.e. their IoU (binarised at logit 0) is below ``bias_iou`` (disjointness); ``p_bias`` is
trained with BCE against that label, weighted by alpha in the total loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["BARConfig", "BiasAwareRecalibration", "BAROutput", "bias_labels"]


@dataclass(frozen=True)
class BARConfig:
    num_layers: int = 2  # self-attention layers over [BIA, z_mem, z_free]
    num_heads: int = 8  # attention heads (d_model must divide by it)
    mlp_ratio: float = 2.0  # feed-forward width / d_model in those layers
    bias_iou: float = 0.5  # mask IoU below which a frame is labelled biased (Eq. 19)


@dataclass
class BAROutput:
    mask_logits: torch.Tensor  # (N, 1, h, w) recalibrated mask logits (Eq. 9)
    p_bias: torch.Tensor  # (N,) probability that the memory-guided mask is biased
    bias_logit: torch.Tensor  # (N,) its logit (for the BCE)
    token: torch.Tensor  # (N, d) p_bias-weighted object token


class BiasAwareRecalibration(nn.Module):
    """[BIA]-token self-attention over the two object tokens (Eq. 8) + mask fusion (Eq. 9).

    Args:
        dim: width of the mask decoder's object tokens (d_model).
        cfg: component config.
    """

    def __init__(self, dim: int, cfg: BARConfig) -> None:
        super().__init__()
        if dim % cfg.num_heads:
            raise ValueError(f"BAR width {dim} must divide by num_heads {cfg.num_heads}")
        self.bia = nn.Parameter(torch.zeros(1, 1, dim))  # the [BIA] token
        self.type_embed = nn.Parameter(torch.zeros(1, 2, dim))  # memory-guided / memory-free
        nn.init.trunc_normal_(self.bia, std=0.02)
        nn.init.trunc_normal_(self.type_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, cfg.num_heads, int(dim * cfg.mlp_ratio),
                                           dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(),
                                  nn.Linear(dim, 1))

    def forward(self, token_mem: torch.Tensor, token_free: torch.Tensor,
                mask_mem: torch.Tensor, mask_free: torch.Tensor) -> BAROutput:
        """Args: object tokens ``(N, d)`` and mask logits ``(N, 1, h, w)`` of both runs."""
        n, d = token_mem.shape
        assert token_free.shape == (n, d), f"token shapes {(n, d)} vs {tuple(token_free.shape)}"
        assert mask_mem.shape == mask_free.shape and mask_mem.shape[0] == n, "mask shapes differ"
        seq = torch.cat([self.bia.expand(n, 1, d),
                         torch.stack([token_mem, token_free], 1) + self.type_embed], 1)  # (N,3,d)
        logit = self.head(self.encoder(seq)[:, 0]).squeeze(-1)  # (N,)
        p = logit.sigmoid()
        w = p[:, None, None, None]
        fused = (1 - w) * mask_mem + w * mask_free  # Eq. 9
        token = (1 - p[:, None]) * token_mem + p[:, None] * token_free
        return BAROutput(mask_logits=fused, p_bias=p, bias_logit=logit, token=token)


@torch.no_grad()
def bias_labels(mask_mem: torch.Tensor, mask_free: torch.Tensor, iou_thresh: float,
                ) -> torch.Tensor:
    """Disjointness label (Eq. 19-20): 1 where IoU(M_mem > 0, M_free > 0) < ``iou_thresh``.

    Two empty masks agree (IoU 1). Args: mask logits ``(N, ...)``; returns ``(N,)`` float.
    """
    a, b = (mask_mem > 0).flatten(1), (mask_free > 0).flatten(1)
    inter = (a & b).sum(1).float()
    union = (a | b).sum(1).float()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return (iou < iou_thresh).float()
