"""Dynamic view token (paper Eq. 3-4).

A camera's view changes how every object looks (viewpoint, scale, colour response). ViewSAM
models it as a learnable condition: a static per-view base embedding ``g_i`` plus a dynamic
part from the frame's own appearance, and the token is smoothed over time:

* Eq. 3 (frame token): ``ê_t = Norm(g_i + λ_dyn · Norm(W_view · Pool_avg(F_t)))``;
* Eq. 4 (EMA of the token, decay α): ``e_t = Norm(α e_{t−1} + (1 − α) ê_t)``,
  ``e_1 = ê_1`` (unless a state ``e_0`` is carried over from the previous clip: then the
  first frame is smoothed with it too).

Each ``Norm`` is its own LayerNorm (the paper does not say which normalisation; LayerNorm
is what the token width's other normalisations use). ``F_t`` is the Hiera stage output
chosen by ``ViewTokenConfig.stage`` (before any VC-CMA adapter of that stage). The token
conditions VC-CMA's attention (Eq. 5-7) and CGCT's FiLM (Eq. 11).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ViewTokenConfig", "ViewToken"]


@dataclass(frozen=True)
class ViewTokenConfig:
    num_views: int = 8  # camera slots: view ids must lie in [0, num_views)
    stage: int = 1  # Hiera stage (0 = highest resolution) whose pooled output feeds W_view


class ViewToken(nn.Module):
    """Per-(view, frame) tokens of width ``dim`` (Eq. 3-4).

    Args:
        in_dim: channels of the pooled stage feature.
        dim: token width (VC-CMA's adapter width).
        num_views: number of base embeddings ``g_i``.
        dynamic_weight: λ_dyn of Eq. 3 (0 = static view embedding only).
        decay: α of Eq. 4, in [0, 1] (0 = no smoothing).
    """

    def __init__(self, in_dim: int, dim: int, num_views: int, dynamic_weight: float,
                 decay: float) -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"the view token's EMA decay α (ViewSAMConfig.alpha) must be in "
                             f"[0, 1], got {decay}")
        self.base = nn.Embedding(num_views, dim)  # g_i
        nn.init.normal_(self.base.weight, std=0.02)
        self.proj = nn.Linear(in_dim, dim)  # W_view
        self.norm_dyn = nn.LayerNorm(dim)  # inner Norm of Eq. 3
        self.norm = nn.LayerNorm(dim)  # outer Norm of Eq. 3
        self.norm_ema = nn.LayerNorm(dim)  # Norm of Eq. 4
        self.dim = dim
        self.num_views = num_views
        self.dynamic_weight = dynamic_weight
        self.decay = decay

    def forward(self, pooled: torch.Tensor, view_ids: torch.Tensor,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens for a clip.

        Args:
            pooled: ``(B, V, T, C_in)`` globally average-pooled frame features.
            view_ids: ``(B, V)`` long camera index of each view.
            state: ``(B, V, dim)`` the token ``e`` of the previous clip's last frame
                (online use); None: the clip starts the stream (``e_1 = ê_1``).

        Returns:
            ``(tokens e (B, V, T, dim), last token e_T (B, V, dim))``; the second is the
            state to carry to the next clip.
        """
        b, v, t, _ = pooled.shape
        assert view_ids.shape == (b, v), f"view_ids must be {(b, v)}, got {tuple(view_ids.shape)}"
        if int(view_ids.min()) < 0 or int(view_ids.max()) >= self.num_views:
            raise ValueError(f"view ids must lie in [0, {self.num_views}); raise "
                             "ViewTokenConfig.num_views for more cameras")
        dyn = self.norm_dyn(self.proj(pooled))  # (B, V, T, dim)
        e_hat = self.norm(self.base(view_ids)[:, :, None] + self.dynamic_weight * dyn)  # Eq. 3
        e = state
        tokens = []
        for i in range(t):  # Eq. 4: EMA of the token
            cur = e_hat[:, :, i]
            e = cur if e is None else self.norm_ema(self.decay * e + (1 - self.decay) * cur)
            tokens.append(e)
        return torch.stack(tokens, dim=2), e
