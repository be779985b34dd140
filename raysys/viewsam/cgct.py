"""Consistency-guided Cross-view Tracking, CGCT (paper Eq. 10-12; App. C.4, Eq. 23).

One identity embedding per tracked object, view and frame, from which global ids across
cameras are assigned at tracking time:

* Eq. 10: ``f = Norm(Fuse({Pool(F^l, M)}_l))``: masked average pooling of every chosen
  Hiera stage ``F^l`` under the object's (recalibrated) mask probability ``M`` resized to
  the stage grid, ``Fuse`` = concatenation followed by an MLP, then ``Norm``;
* Eq. 11: ``[gamma, beta] = MLP(e)`` from the view token ``e`` and
  ``z = Norm((1 + delta tanh(gamma)) * f + delta beta)``, ``delta`` the modulation strength.

``Norm`` is L2 normalisation. Choices where the paper is silent: the fusion MLP starts with a
LayerNorm of the concatenation (the stages' features differ in scale by orders of
magnitude); the FiLM MLP is two layers of the embedding width, the last zero-initialised,
so an untrained FiLM is the identity. Masks are detached before pooling: the identity loss
should shape the embedding, not pull the masks towards whatever pixels are most
discriminative.

Backbones (``CGCTConfig.backbone``): ``"sam2"`` pools the frozen SAM2 trunk's Hiera stages
over the whole frame; ``"osnet"`` is the paper's (App. C.4, "built upon an OSNet"): an OSNet
over a crop of the object at its box, cut from the full-resolution frame
(:mod:`raysys.viewsam.osnet_backbone`), pre-trained for ReID and trained with CGCT;
``"attribute"`` reads the same crop with the frozen attribute net, the APTM analogue the
Candidate Generator is built upon (:class:`raysys.viewsam.attribute_roi.AttributeBackbone`):
``f = Norm(x + Fuse(x))`` with ``x`` the square roots of its per-attribute probabilities
and ``Fuse``'s last layer zero-initialised, so that an untrained head is the reading itself.
On generated people that reading tells identities apart better than the embedded OSNet
(cross-view tracklet rank-1 0.85 against 0.63 on seed 30's test splits, docs/lab-notes.md).

The consistency loss (Eq. 12 = Eq. 23) is :func:`raysys.viewsam.losses.cgct_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CGCTConfig", "CGCT", "masked_average_pool", "CGCT_OBJECTIVES", "CGCT_BACKBONES"]

CGCT_OBJECTIVES = ("paper", "infonce")
CGCT_BACKBONES = ("sam2", "osnet", "attribute")


@dataclass(frozen=True)
class CGCTConfig:
    stages: tuple[int, ...] = (0, 1, 2, 3)  # scales pooled under the mask: Hiera stages
    #   (sam2), or OSNet's conv3, conv4, conv5 and fc(conv5) (osnet)
    backbone: str = "sam2"  # "sam2": the frozen trunk's stages over the frame; "osnet": an
    #   OSNet over the object's crop (App. C.4), trained with CGCT; "attribute": the frozen
    #   attribute net's reading of the crop (the APTM analogue), fused residually (stages
    #   and dim do not apply: one scale, the reading's width)
    backbone_weights: str | None = "embedded"  # osnet: "embedded" (raysys pretrain-reid), a
    #   local torchreid file, or None (random init); attribute: "embedded" (raysys
    #   pretrain-describer) or a local .pt of it
    dim: int | None = None  # embedding width; None: SAM2's d_model
    hidden: int | None = None  # fusion MLP hidden width; None: 4 * d_model
    objective: str = "paper"  # consistency loss: "paper" (Eq. 12/23, prototypes; it has no
    #   repulsive term and is minimised by collapse) or "infonce" (supervised InfoNCE; the
    #   quick schedule's, with the attribute backbone). Same-id minus different-id cosine,
    #   main job's weak model: SAM2 stages 0.000 (paper) and 0.044 (infonce, 2026-12-04);
    #   attribute 0.000 (paper, train split) and 0.438 (infonce, test split, stop 44)
    temperature: float = 0.1  # tau of the InfoNCE objective (objective="infonce" only)
    inter_weight: float = 1.0  # InfoNCE only: inter-view term relative to the intra-view one

    def __post_init__(self) -> None:
        if self.backbone not in CGCT_BACKBONES:
            raise ValueError(f"cgct.backbone must be one of {CGCT_BACKBONES}, "
                             f"got {self.backbone!r}")
        if self.objective not in CGCT_OBJECTIVES:
            raise ValueError(f"cgct.objective must be one of {CGCT_OBJECTIVES}, "
                             f"got {self.objective!r}")


def masked_average_pool(feat: torch.Tensor, masks: torch.Tensor, eps: float = 1e-6,
                        ) -> torch.Tensor:
    """Masked average pooling (Pool of Eq. 10, the inner mean of Eq. 8).

    feat ``(N, C, h, w)``, masks ``(N, O, H, W)`` probabilities -> ``(N, O, C)``. Masks are
    area-resized to ``(h, w)``; an empty mask pools to ~0.
    """
    n, _, h, w = feat.shape
    assert masks.shape[0] == n and masks.dim() == 4, f"masks must be (N, O, H, W) with N={n}"
    m = F.adaptive_avg_pool2d(masks, (h, w)) if masks.shape[-2:] != (h, w) else masks
    pooled = torch.einsum("nchw,nohw->noc", feat, m)
    return pooled / (m.sum((-2, -1))[..., None] + eps)


class CGCT(nn.Module):
    """Multi-scale masked pooling and fusion (Eq. 10), view FiLM (Eq. 11).

    Args:
        stage_channels: Hiera stage widths, highest resolution first.
        view_dim: width of the view token (0 = no view modulation).
        cfg: component config; dim, hidden: resolved widths (embedding, MLP hidden).
        film_strength: delta of Eq. 11.
    """

    def __init__(self, stage_channels: tuple[int, ...], view_dim: int, cfg: CGCTConfig,
                 dim: int, hidden: int, film_strength: float) -> None:
        super().__init__()
        self.backbone = None
        if cfg.backbone == "osnet":
            from raysys.viewsam.osnet_backbone import OSNetBackbone

            self.backbone = OSNetBackbone(weights=cfg.backbone_weights)
            stage_channels = self.backbone.channels
        stages = tuple(cfg.stages)
        self.residual = cfg.backbone == "attribute"
        if self.residual:
            from raysys.viewsam.attribute_roi import AttributeBackbone

            self.backbone = AttributeBackbone(cfg.backbone_weights)
            stage_channels, stages = self.backbone.channels, (0,)
            dim = stage_channels[0]  # f = Norm(x + Fuse(x)): the reading's own width
        if not stages or any(s < 0 or s >= len(stage_channels) for s in stages):
            raise ValueError(f"CGCT stages {cfg.stages} must be non-empty and in "
                             f"[0, {len(stage_channels)})")
        self.stages = stages
        cat = sum(stage_channels[s] for s in self.stages)
        self.fuse = nn.Sequential(nn.LayerNorm(cat), nn.Linear(cat, hidden), nn.GELU(),
                                  nn.Linear(hidden, dim))  # Fuse of Eq. 10 (after concat)
        if self.residual:  # an untrained head is the reading itself
            nn.init.zeros_(self.fuse[-1].weight)
            nn.init.zeros_(self.fuse[-1].bias)
        self.film = None
        if view_dim > 0:  # [gamma, beta] = MLP(e) of Eq. 11; zero last layer = identity
            self.film = nn.Sequential(nn.Linear(view_dim, dim), nn.GELU(),
                                      nn.Linear(dim, 2 * dim))
            nn.init.zeros_(self.film[-1].weight)
            nn.init.zeros_(self.film[-1].bias)
        self.film_strength = film_strength
        self.dim = dim

    def forward(self, stages: list[torch.Tensor], masks: torch.Tensor,
                view: torch.Tensor | None = None, crops: torch.Tensor | None = None,
                boxes: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            stages: Hiera stage features, each ``(N, C_s, h_s, w_s)`` (all stages).
            masks: ``(N, O, H, W)`` mask probabilities of ``O`` objects per frame.
            view: ``(N, d_v)`` view tokens (required iff built with view modulation).
            crops: ``osnet`` backbone: ``(N, O, 3, h, w)`` object crops in [0, 1]
                (:func:`raysys.viewsam.osnet_backbone.crop_objects`).
            boxes: ``osnet`` backbone: ``(N, O, 4)`` the crops' boxes, xyxy in the mask
                pixels (the masks are cut to them).

        Returns ``(N, O, dim)`` L2-normalised embeddings ``z``.
        """
        return self.head(self.pool(stages, masks, crops, boxes), view)

    def pool(self, stages: list[torch.Tensor], masks: torch.Tensor,
             crops: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
             ) -> torch.Tensor:
        """The concatenated pools ``(N, O, C)`` that Fuse (Eq. 10) reads: the masked pools
        of the stage features, or the crop backbone's reading (arguments of :meth:`forward`).
        With a crop backbone each object's pool depends on its own crop alone, so objects of
        several frames or expressions may be pooled in one call."""
        masks = masks.detach()
        if self.backbone is None:
            pooled = [masked_average_pool(stages[s], masks) for s in self.stages]
        else:
            pooled = self._crop_pools(masks, crops, boxes)
        return torch.cat(pooled, dim=-1)

    def head(self, x: torch.Tensor, view: torch.Tensor | None = None) -> torch.Tensor:
        """Fuse (Eq. 10) and the view FiLM (Eq. 11) of pools ``x`` ``(N, O, C)`` with view
        tokens ``(N, d_v)`` -> ``(N, O, dim)`` L2-normalised embeddings."""
        f = F.normalize(x + self.fuse(x) if self.residual else self.fuse(x), dim=-1)  # Eq. 10
        if self.film is None:
            return f
        assert view is not None and view.shape[0] == f.shape[0], "FiLM needs (N, d_v) views"
        gamma, beta = self.film(view)[:, None].chunk(2, dim=-1)  # (N, 1, dim) each
        d = self.film_strength
        return F.normalize((1 + d * gamma.tanh()) * f + d * beta, dim=-1)  # Eq. 11

    def _crop_pools(self, masks: torch.Tensor, crops, boxes) -> list[torch.Tensor]:
        """The OSNet backbone's masked pools of each object's crop, ``(N, O, C_s)`` each."""
        from raysys.viewsam.osnet_backbone import crop_maps

        if crops is None or boxes is None:
            raise ValueError("CGCT with the osnet backbone needs the objects' crops and boxes")
        n, o = masks.shape[:2]
        if n * o == 0:
            return [masks.new_zeros(n, o, self.backbone.channels[s]) for s in self.stages]
        if self.residual:  # the attribute net reads the whole crop
            pools = self.backbone(crops.flatten(0, 1).float())
        else:
            cm = crop_maps(masks, boxes, tuple(crops.shape[-2:]))  # (N, O, h, w)
            pools = self.backbone(crops.flatten(0, 1).float(), cm.flatten(0, 1))
        return [pools[s].reshape(n, o, -1) for s in self.stages]
