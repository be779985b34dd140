"""Dynamic view token (paper Eq. 3-4).

A camera's view changes how every object looks (viewpoint, scale, colour response). ViewSAM
models it as a learnable condition: a static per-view base embedding ``e_v`` plus a dynamic
part from the frame's own appearance, smoothed over time:

* Eq. 4 (dynamic part): ``h_t = beta * h_{t-1} + (1 - beta) * W_p GAP(F_t)``, an EMA over
  the frames of the view (``h_0 = W_p GAP(F_0)`` unless a state is carried over);
* Eq. 3 (token): ``v_t = LN(e_v + lambda_dyn * h_t)``.

``F_t`` is the Hiera stage output chosen by ``ViewTokenConfig.stage`` (before any VC-CMA
adapter of that stage). The token conditions VC-CMA's cross attention and gate and CGCT's
FiLM.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ViewTokenConfig", "ViewToken"]


@dataclass(frozen=True)
class ViewTokenConfig:
    num_views: int = 8  # camera slots: view ids must lie in [0, num_views)
    stage: int = 1  # Hiera stage (0 = highest resolution) whose pooled output feeds W_p
    momentum: float = 0.5  # beta of the EMA over frames (Eq. 4); 0 = no smoothing


class ViewToken(nn.Module):
    """Per-(view, frame) tokens of width ``dim``.

    Args:
        in_dim: channels of the pooled stage feature.
        dim: token width (VC-CMA's adapter width).
        num_views: number of base embeddings.
        dynamic_weight: lambda_dyn of Eq. 3 (0 = static view embedding only).
        momentum: beta of Eq. 4.
    """

    def __init__(self, in_dim: int, dim: int, num_views: int, dynamic_weight: float,
                 momentum: float) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"view token momentum must be in [0, 1), got {momentum}")
        self.base = nn.Embedding(num_views, dim)  # e_v
        nn.init.normal_(self.base.weight, std=0.02)
        self.proj = nn.Linear(in_dim, dim)  # W_p
        self.norm = nn.LayerNorm(dim)
        self.dim = dim
        self.num_views = num_views
        self.dynamic_weight = dynamic_weight
        self.momentum = momentum

    def forward(self, pooled: torch.Tensor, view_ids: torch.Tensor,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens for a clip.

        Args:
            pooled: ``(B, V, T, C_in)`` globally average-pooled frame features.
            view_ids: ``(B, V)`` long camera index of each view.
            state: ``(B, V, dim)`` EMA state ``h`` from the previous clip (online use).

        Returns:
            ``(tokens (B, V, T, dim), last state (B, V, dim))``.
        """
        b, v, t, _ = pooled.shape
        assert view_ids.shape == (b, v), f"view_ids must be {(b, v)}, got {tuple(view_ids.shape)}"
        if int(view_ids.min()) < 0 or int(view_ids.max()) >= self.num_views:
            raise ValueError(f"view ids must lie in [0, {self.num_views}); raise "
                             "ViewTokenConfig.num_views for more cameras")
        d = self.proj(pooled)  # (B, V, T, dim)
        h = d[:, :, 0] if state is None else state  # (B, V, dim)
        hs = []
        for i in range(t):  # Eq. 4: EMA over frames
            h = self.momentum * h + (1 - self.momentum) * d[:, :, i]
            hs.append(h)
        dyn = torch.stack(hs, dim=2)  # (B, V, T, dim)
        tokens = self.norm(self.base(view_ids)[:, :, None] + self.dynamic_weight * dyn)  # Eq. 3
        return tokens, h
