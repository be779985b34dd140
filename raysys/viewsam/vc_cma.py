"""View-conditioned Cross-modal Alignment, VC-CMA (paper Eq. 5-7).

Bottleneck adapters inserted after chosen Hiera stages of SAM2's image encoder (the feature
pyramid's fusion stages). Each adapter, for a clip of ``T`` frames of one view:

* Eq. 5 (bottleneck + view-conditioned attention): visual tokens ``X = W_down LN(F)``;
  queries and keys carry the view token ``v``: ``Q = W_q (X + W_qv v)``,
  ``K = W_k (E + W_kv v)``, ``V = W_v E`` with ``E`` the text tokens;
* Eq. 6 (Hadamard gate): ``Z = sigma(W_g v) (.) softmax(Q K^T / sqrt(d)) V``;
* Eq. 7 (residual update): ``F' = F + W_up Z`` with ``W_up`` zero-initialised, so an
  untrained adapter leaves the frozen SAM2 exactly as it was.

Visual tokens are updated per frame. The text tokens are updated once per clip and stage
from a clip-level summary of the view (every frame average-pooled to ``s x s`` tokens, then
averaged over frames), with the same view-conditioned attention followed by an MLP; the
updated text tokens carry on to the next fusion stage. With ``view_conditioned=False``
(the ``use_vcca`` ablation) the attention is plain cross attention: no view terms, no gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VCCMAConfig", "ViewConditionedCrossAttention", "VCCMAAdapter", "VCCMA"]


@dataclass(frozen=True)
class VCCMAConfig:
    stages: tuple[int, ...] = (1, 2, 3)  # Hiera stages (0 = highest res) followed by an adapter
    width: int | None = None  # adapter bottleneck width d_a; None: SAM2's d_model (256 for 2.1)
    num_heads: int = 8  # attention heads (width must divide by it)
    summary_size: int = 2  # each frame pooled to s x s tokens for the clip-level summary
    text_mlp_ratio: float = 2.0  # hidden width / d_a of the MLP after the text update


class ViewConditionedCrossAttention(nn.Module):
    """Cross attention whose queries/keys are shifted by a view token and whose output is
    gated by it (Eq. 5-6); plain multi-head cross attention when ``view_conditioned=False``.
    """

    def __init__(self, dim: int, num_heads: int, view_conditioned: bool = True) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.view_conditioned = view_conditioned
        if view_conditioned:
            self.q_view = nn.Linear(dim, dim, bias=False)  # W_qv
            self.k_view = nn.Linear(dim, dim, bias=False)  # W_kv
            self.gate = nn.Linear(dim, dim)  # W_g

    def forward(self, query: torch.Tensor, context: torch.Tensor, view: torch.Tensor | None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args: query ``(N, Lq, d)``; context ``(N, Lk, d)``; view ``(N, d)`` (ignored when
        not view-conditioned); context_mask ``(N, Lk)`` bool, True = valid token.

        Returns ``(N, Lq, d)``."""
        q, k = query, context
        if self.view_conditioned:
            assert view is not None and view.shape == (query.shape[0], query.shape[2]), (
                "a view-conditioned attention needs a view token (N, d)")
            q = q + self.q_view(view)[:, None]
            k = k + self.k_view(view)[:, None]
        pad = None if context_mask is None else ~context_mask
        out, _ = self.attn(q, k, context, key_padding_mask=pad, need_weights=False)
        if self.view_conditioned:
            out = torch.sigmoid(self.gate(view))[:, None] * out  # Hadamard gate, Eq. 6
        return out


class VCCMAAdapter(nn.Module):
    """One fusion-stage adapter (Eq. 5-7) for a Hiera stage with ``in_dim`` channels."""

    def __init__(self, in_dim: int, cfg: VCCMAConfig, width: int, view_conditioned: bool):
        super().__init__()
        self.down = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, width))  # W_down
        self.up = nn.Linear(width, in_dim)  # W_up, zero-init: identity at start
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.visual_attn = ViewConditionedCrossAttention(width, cfg.num_heads, view_conditioned)
        self.text_attn = ViewConditionedCrossAttention(width, cfg.num_heads, view_conditioned)
        hidden = int(width * cfg.text_mlp_ratio)
        self.text_norm = nn.LayerNorm(width)
        self.text_mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(),
                                      nn.Linear(hidden, width))
        self.summary_size = cfg.summary_size

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                view: torch.Tensor | None, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            x: ``(BV*T, h, w, C)`` stage output (Hiera layout), frames of a view contiguous.
            text: ``(BV, L, d_a)`` text tokens of each view's clip; text_mask ``(BV, L)``.
            view: ``(BV*T, d_a)`` view tokens (None when not view-conditioned).
            num_frames: ``T``.

        Returns ``(x' (BV*T, h, w, C), text' (BV, L, d_a))``.
        """
        n, h, w, _ = x.shape
        bv, t = text.shape[0], num_frames
        assert n == bv * t, f"{n} frames for {bv} views x {t} frames"
        vis = self.down(x).reshape(n, h * w, -1)  # (BV*T, hw, d_a)
        # clip-level summary of each view: (BV, s*s, d_a)
        s = min(self.summary_size, h, w)
        grid = F.adaptive_avg_pool2d(vis.transpose(1, 2).reshape(n, -1, h, w), s)
        summary = grid.flatten(2).transpose(1, 2).reshape(bv, t, s * s, -1).mean(1)
        clip_view = None if view is None else view.reshape(bv, t, -1).mean(1)  # (BV, d_a)
        text = text + self.text_attn(self.text_norm(text), summary, clip_view)
        text = text + self.text_mlp(text)
        # every frame attends to its view's updated text (Eq. 5-6)
        text_f = text.repeat_interleave(t, dim=0)  # (BV*T, L, d_a)
        mask_f = text_mask.repeat_interleave(t, dim=0)
        z = self.visual_attn(vis, text_f, view, mask_f)  # (BV*T, hw, d_a)
        return x + self.up(z).reshape(n, h, w, -1), text  # Eq. 7


class VCCMA(nn.Module):
    """The adapters of all fusion stages plus the projection of the frozen text tokens.

    Args:
        text_dim: width of the frozen text encoder.
        stage_channels: Hiera stage widths, highest resolution first.
        cfg: component config; width: resolved adapter width ``d_a``.
        view_conditioned: False for the plain-cross-attention ablation (``use_vcca``).
    """

    def __init__(self, text_dim: int, stage_channels: tuple[int, ...], cfg: VCCMAConfig,
                 width: int, view_conditioned: bool = True) -> None:
        super().__init__()
        if not cfg.stages or any(s < 0 or s >= len(stage_channels) for s in cfg.stages):
            raise ValueError(f"VC-CMA stages {cfg.stages} must be non-empty and in "
                             f"[0, {len(stage_channels)})")
        if width % cfg.num_heads:
            raise ValueError(f"VC-CMA width {width} must divide by num_heads {cfg.num_heads}")
        self.stages = tuple(sorted(set(cfg.stages)))
        self.width = width
        self.view_conditioned = view_conditioned
        self.text_proj = nn.Sequential(nn.Linear(text_dim, width), nn.LayerNorm(width))
        self.adapters = nn.ModuleDict({
            str(s): VCCMAAdapter(stage_channels[s], cfg, width, view_conditioned)
            for s in self.stages})

    def init_text(self, tokens: torch.Tensor, num_views: int) -> torch.Tensor:
        """``(B, L, D_t)`` frozen text features -> ``(B*V, L, d_a)`` per-view text tokens."""
        return self.text_proj(tokens).repeat_interleave(num_views, dim=0)

    def forward(self, stage: int, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                view: torch.Tensor | None, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the adapter of ``stage`` (see :meth:`VCCMAAdapter.forward`)."""
        if self.view_conditioned and view is None:
            raise ValueError("view-conditioned VC-CMA needs view tokens (build a ViewToken)")
        return self.adapters[str(stage)](x, text, text_mask,
                                         view if self.view_conditioned else None, num_frames)
