"""View-conditioned Cross-modal Alignment, VC-CMA (paper §3.3.1, Eq. 5-7).

Bottleneck adapters inserted after chosen Hiera stages of SAM2's image encoder (the
feature pyramid's fusion stages). Each adapter, for a clip of ``T`` frames of one view:

* bottleneck projections ``X_t^s = X_t W_v↓`` of the stage's visual tokens and
  ``T_text^s = T_text W_t↓`` of the text tokens (each after a LayerNorm, as the adapter's
  input normalisation);
* Eq. 5 (view-conditioned cross attention):
  ``VCCA(U, R; e) = U ⊙ MHA(U + e W_u, R + e W_r, R)``: the view token shifts queries
  and keys, and the output is gated, token by token and channel by channel, by the query
  tokens ``U`` themselves (Hadamard product);
* Eq. 6 (visual update, per frame): ``X_ca^t = X_t + VCCA(X_t^s, T_text^s; e_t) W_v↑``;
* Eq. 7 (text update, per clip): ``T_ca = T_text + VCCA(T_text^s, X̄^s; e^clip) W_t↑`` with
  ``X̄^s`` the mean over the clip's frames of ``X_t^s`` (every token) and ``e^clip`` the
  mean of the frame tokens.

Both updates of a stage read the stage's inputs (Eq. 6 attends to ``T_text^s``, not to
the text this stage updates). ``T_text`` lives in the frozen text encoder's width: the
first stage gets the encoder's tokens, each later stage the ``T_ca`` of the stage before
(the paper does not say how the stages chain; this carries the text on in its own width,
with one ``W_t↓``/``W_t↑`` pair per stage). The last stage's ``T_ca``, one per view, is the
text every later module uses (Candidate Generator, BAR). ``W_v↑`` and ``W_t↑`` are
zero-initialised, so an untrained adapter leaves the frozen SAM2 and the text as they were.
With ``view_conditioned=False`` (the ``use_vcca`` ablation) the attention is plain cross
attention ``MHA(U, R, R)``: no view terms, no gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["VCCMAConfig", "ViewConditionedCrossAttention", "VCCMAAdapter", "VCCMA"]


@dataclass(frozen=True)
class VCCMAConfig:
    stages: tuple[int, ...] = (1, 2, 3)  # Hiera stages (0 = highest res) followed by an adapter
    width: int | None = None  # adapter bottleneck width d_s; None: SAM2's d_model (256 for 2.1)
    num_heads: int = 8  # attention heads (width must divide by it)


class ViewConditionedCrossAttention(nn.Module):
    """VCCA of Eq. 5, ``U ⊙ MHA(U + e W_u, R + e W_r, R)``; plain multi-head cross attention
    ``MHA(U, R, R)`` when ``view_conditioned=False``.
    """

    def __init__(self, dim: int, num_heads: int, view_conditioned: bool = True) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)  # MHA
        self.view_conditioned = view_conditioned
        if view_conditioned:
            self.q_view = nn.Linear(dim, dim, bias=False)  # W_u
            self.k_view = nn.Linear(dim, dim, bias=False)  # W_r

    def forward(self, query: torch.Tensor, context: torch.Tensor, view: torch.Tensor | None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args: query ``U`` ``(N, Lq, d)``; context ``R`` ``(N, Lk, d)``; view ``e``
        ``(N, d)`` (ignored when not view-conditioned); context_mask ``(N, Lk)`` bool,
        True = valid token.

        Returns ``(N, Lq, d)``."""
        pad = None if context_mask is None else ~context_mask
        if not self.view_conditioned:
            return self.attn(query, context, context, key_padding_mask=pad,
                             need_weights=False)[0]
        assert view is not None and view.shape == (query.shape[0], query.shape[2]), (
            "a view-conditioned attention needs a view token (N, d)")
        q = query + self.q_view(view)[:, None]
        k = context + self.k_view(view)[:, None]
        out, _ = self.attn(q, k, context, key_padding_mask=pad, need_weights=False)
        return query * out  # Eq. 5: U ⊙ MHA(...)


class VCCMAAdapter(nn.Module):
    """One fusion-stage adapter (Eq. 5-7) for a Hiera stage with ``in_dim`` channels and
    text tokens of width ``text_dim``."""

    def __init__(self, in_dim: int, text_dim: int, cfg: VCCMAConfig, width: int,
                 view_conditioned: bool):
        super().__init__()
        self.down = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, width))  # W_v↓
        self.up = nn.Linear(width, in_dim)  # W_v↑, zero-init: identity at start
        self.text_down = nn.Sequential(nn.LayerNorm(text_dim),
                                       nn.Linear(text_dim, width))  # W_t↓
        self.text_up = nn.Linear(width, text_dim)  # W_t↑, zero-init
        for lin in (self.up, self.text_up):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.visual_attn = ViewConditionedCrossAttention(width, cfg.num_heads, view_conditioned)
        self.text_attn = ViewConditionedCrossAttention(width, cfg.num_heads, view_conditioned)

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                view: torch.Tensor | None, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            x: ``(BV*T, h, w, C)`` stage output ``X_t`` (Hiera layout), frames of a view
                contiguous.
            text: ``(BV, L, D_t)`` text tokens ``T_text`` of each view's clip; text_mask
                ``(BV, L)`` bool, True = valid token.
            view: ``(BV*T, d_s)`` view tokens ``e_t`` (None when not view-conditioned).
            num_frames: ``T``.

        Returns ``(X_ca (BV*T, h, w, C), T_ca (BV, L, D_t))`` (Eq. 6, Eq. 7).
        """
        n, h, w, _ = x.shape
        bv, t = text.shape[0], num_frames
        assert n == bv * t, f"{n} frames for {bv} views x {t} frames"
        vis = self.down(x).reshape(n, h * w, -1)  # X_t^s (BV*T, hw, d_s)
        txt = self.text_down(text)  # T_text^s (BV, L, d_s)
        # Eq. 6: every frame attends to its view's text with its frame token
        txt_f = txt.repeat_interleave(t, dim=0)  # (BV*T, L, d_s)
        mask_f = text_mask.repeat_interleave(t, dim=0)
        z = self.visual_attn(vis, txt_f, view, mask_f)  # (BV*T, hw, d_s)
        x_ca = x + self.up(z).reshape(n, h, w, -1)
        # Eq. 7: the text attends to the clip mean of the visual tokens with e^clip
        x_bar = vis.reshape(bv, t, h * w, -1).mean(1)  # X̄^s (BV, hw, d_s)
        e_clip = None if view is None else view.reshape(bv, t, -1).mean(1)  # (BV, d_s)
        t_ca = text + self.text_up(self.text_attn(txt, x_bar, e_clip))
        return x_ca, t_ca


class VCCMA(nn.Module):
    """The adapters of all fusion stages.

    Args:
        text_dim: width of the frozen text encoder (``T_text``, ``T_ca``).
        stage_channels: Hiera stage widths, highest resolution first.
        cfg: component config; width: resolved adapter width ``d_s``.
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
        self.text_dim = text_dim
        self.view_conditioned = view_conditioned
        self.adapters = nn.ModuleDict({
            str(s): VCCMAAdapter(stage_channels[s], text_dim, cfg, width, view_conditioned)
            for s in self.stages})

    def forward(self, stage: int, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                view: torch.Tensor | None, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the adapter of ``stage`` (see :meth:`VCCMAAdapter.forward`)."""
        if self.view_conditioned and view is None:
            raise ValueError("view-conditioned VC-CMA needs view tokens (build a ViewToken)")
        return self.adapters[str(stage)](x, text, text_mask,
                                         view if self.view_conditioned else None, num_frames)
