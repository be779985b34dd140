"""Consistency-guided Cross-view Tracking, CGCT (paper Eq. 10-12, 23).

One identity embedding per tracked object, view and frame, from which global ids across
cameras are assigned at tracking time:

* Eq. 10 (masked average pooling): at every chosen Hiera stage ``s``,
  ``f_s = sum_hw F_s m / sum_hw m`` with ``m`` the object's (recalibrated) mask
  probability resized to the stage grid;
* Eq. 11 (fusion + view modulation): ``e = MLP([W_s f_s]_s)``, then FiLM by the view
  token ``v``: ``e' = e (.) (1 + delta * gamma(v)) + delta * beta(v)`` with ``(gamma, beta)``
  a zero-initialised linear map of ``v`` and ``delta`` the modulation strength;
* Eq. 12: ``z = e' / ||e'||``.

The consistency loss (Eq. 23, :func:`raysys.viewsam.losses.consistency_loss`) pulls
embeddings of the same global id together within a view (across time) and across views,
and pushes different ids apart, weighted by lambda in the total loss.

Masks are detached before pooling: the identity loss should shape the embedding, not pull
the masks towards whatever pixels are most discriminative.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CGCTConfig", "CGCT", "masked_average_pool"]


@dataclass(frozen=True)
class CGCTConfig:
    stages: tuple[int, ...] = (0, 1, 2, 3)  # Hiera stages pooled under the mask (multi-scale)
    dim: int | None = None  # embedding width; None: SAM2's d_model
    hidden: int | None = None  # fusion MLP hidden width; None: 4 * d_model
    temperature: float = 0.1  # tau of the InfoNCE consistency loss (Eq. 23)
    inter_weight: float = 1.0  # weight of the inter-view term relative to the intra-view one


def masked_average_pool(feat: torch.Tensor, masks: torch.Tensor, eps: float = 1e-6,
                        ) -> torch.Tensor:
    """Eq. 10. feat ``(N, C, h, w)``, masks ``(N, O, H, W)`` probabilities -> ``(N, O, C)``.

    Masks are area-resized to ``(h, w)``; an empty mask pools to ~0.
    """
    n, _, h, w = feat.shape
    assert masks.shape[0] == n and masks.dim() == 4, f"masks must be (N, O, H, W) with N={n}"
    m = F.adaptive_avg_pool2d(masks, (h, w)) if masks.shape[-2:] != (h, w) else masks
    pooled = torch.einsum("nchw,nohw->noc", feat, m)
    return pooled / (m.sum((-2, -1))[..., None] + eps)


class CGCT(nn.Module):
    """Multi-scale masked pooling, fusion MLP and view FiLM (Eq. 10-12).

    Args:
        stage_channels: Hiera stage widths, highest resolution first.
        view_dim: width of the view token (0 = no view modulation).
        cfg: component config; dim, hidden: resolved widths.
        film_strength: delta of Eq. 11.
    """

    def __init__(self, stage_channels: tuple[int, ...], view_dim: int, cfg: CGCTConfig,
                 dim: int, hidden: int, film_strength: float) -> None:
        super().__init__()
        if not cfg.stages or any(s < 0 or s >= len(stage_channels) for s in cfg.stages):
            raise ValueError(f"CGCT stages {cfg.stages} must be non-empty and in "
                             f"[0, {len(stage_channels)})")
        self.stages = tuple(cfg.stages)
        self.proj = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(stage_channels[s]), nn.Linear(stage_channels[s], dim))
            for s in self.stages)
        self.fuse = nn.Sequential(nn.Linear(dim * len(self.stages), hidden), nn.GELU(),
                                  nn.Linear(hidden, dim))
        self.film = None
        if view_dim > 0:
            self.film = nn.Linear(view_dim, 2 * dim)  # (gamma, beta), zero-init = identity
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        self.film_strength = film_strength
        self.dim = dim

    def forward(self, stages: list[torch.Tensor], masks: torch.Tensor,
                view: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            stages: Hiera stage features, each ``(N, C_s, h_s, w_s)`` (all stages).
            masks: ``(N, O, H, W)`` mask probabilities of ``O`` objects per frame.
            view: ``(N, d_v)`` view tokens (required iff built with view modulation).

        Returns ``(N, O, dim)`` L2-normalised embeddings.
        """
        masks = masks.detach()
        parts = [p(masked_average_pool(stages[s], masks))
                 for s, p in zip(self.stages, self.proj, strict=True)]
        e = self.fuse(torch.cat(parts, dim=-1))  # (N, O, dim), Eq. 11
        if self.film is not None:
            assert view is not None and view.shape[0] == e.shape[0], "FiLM needs (N, d_v) views"
            gamma, beta = self.film(view)[:, None].chunk(2, dim=-1)  # (N, 1, dim) each
            e = e * (1 + self.film_strength * gamma) + self.film_strength * beta
        return F.normalize(e, dim=-1)  # Eq. 12
