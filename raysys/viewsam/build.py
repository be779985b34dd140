"""Wire a ViewSAM model: SAM2 base + frozen text encoder + the enabled components."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from raysys.viewsam.bar import BiasAwareRecalibration
from raysys.viewsam.base import build_sam2_base, sam2_dims
from raysys.viewsam.candidate_generator import CandidateGenerator
from raysys.viewsam.cgct import CGCT
from raysys.viewsam.config import ViewSAMConfig, resolve_widths
from raysys.viewsam.text_encoder import FrozenTextEncoder, build_text_encoder
from raysys.viewsam.vc_cma import VCCMA
from raysys.viewsam.view_token import ViewToken
from raysys.viewsam.viewsam import ViewSAM

__all__ = ["build_viewsam"]


def build_viewsam(
    cfg: ViewSAMConfig | None = None, sam2_config: str | Path | None = None,
    sam2_checkpoint: str | Path | None = None,
    text_encoder: str | FrozenTextEncoder = "minilm", device: str | torch.device = "cpu",
    freeze_base: bool | None = None, teacher=None,
) -> ViewSAM:
    """Build ViewSAM.

    Args:
        cfg: model config (default: ``ViewSAMConfig()``).
        sam2_config: SAM2 YAML: None / ``"tiny"`` (embedded default), a local file or a
            ``sam2`` package name such as ``"configs/sam2.1/sam2.1_hiera_b+.yaml"``.
        sam2_checkpoint: local SAM2 ``.pt``; None = random init.
        text_encoder: spec (``"minilm"``, ``"hf:DIR"``, ``"random:roberta-base"``) or a built
            :class:`FrozenTextEncoder` (always frozen).
        device: where the model is placed (the caller's choice; nothing is picked here).
        freeze_base: freeze SAM2; default: frozen iff a checkpoint is given (the paper trains
            adapters on a frozen pretrained SAM2; the embedded tiny base is trained).
        teacher: CG box teacher (default: Stage 1 pseudo-label boxes).
    """
    cfg = cfg or ViewSAMConfig()
    sam2 = build_sam2_base(sam2_config, sam2_checkpoint, device="cpu")
    # SAM2 applies this across the batch assuming one video; our batch mixes views/clips
    sam2.non_overlap_masks_for_mem_enc = False
    if freeze_base is None:
        freeze_base = sam2_checkpoint is not None
    for p in sam2.parameters():
        p.requires_grad_(not freeze_base)
    text = (text_encoder if isinstance(text_encoder, FrozenTextEncoder)
            else build_text_encoder(text_encoder, device="cpu"))
    dims = sam2_dims(sam2)
    wd = resolve_widths(cfg, dims)
    view_token = None
    if cfg.needs_view_token:
        vt = cfg.view_token
        if not 0 <= vt.stage < len(dims.stage_channels):
            raise ValueError(f"view_token.stage {vt.stage} outside [0, {len(dims.stage_channels)})")
        view_token = ViewToken(dims.stage_channels[vt.stage], wd.adapter, vt.num_views,
                               cfg.lambda_dyn, cfg.alpha)
    vc_cma = text_prompt = None
    if cfg.use_vc_cma:
        vc_cma = VCCMA(text.dim, dims.stage_channels, cfg.vc_cma, wd.adapter,
                       view_conditioned=cfg.use_vcca)
    else:  # plain text prompt: pooled text as one sparse prompt token of the mask decoder
        text_prompt = nn.Sequential(nn.Linear(text.dim, dims.d_model), nn.LayerNorm(dims.d_model))
    cg = None
    if cfg.use_candidate_generator:
        fine_dim = (int(sam2.sam_mask_decoder.conv_s1.out_channels)
                    if sam2.use_high_res_features_in_sam else dims.d_model)
        cg = CandidateGenerator(dims.d_model, text.dim, cfg.candidate_generator, wd.cg_width,
                                wd.cg_hidden, fine_dim=fine_dim)
    # t_R: the masked mean of T_ca, in the text encoder's width (Eq. 7-8)
    bar = BiasAwareRecalibration(dims.d_model, cfg.bar, text_dim=text.dim) if cfg.use_bar \
        else None
    cgct = None
    if cfg.use_cgct:
        view_dim = wd.adapter if cfg.use_view_modulation else 0
        cgct = CGCT(dims.stage_channels, view_dim, cfg.cgct, wd.embed, wd.embed_hidden,
                    film_strength=cfg.delta)
    model = ViewSAM(cfg, sam2, text, view_token=view_token, vc_cma=vc_cma,
                    text_prompt=text_prompt, candidate_generator=cg, bar=bar, cgct=cgct,
                    teacher=teacher)
    # what a checkpoint needs to rebuild this model (with dataclasses.asdict(cfg))
    model.build_spec = {"sam2_config": None if sam2_config is None else str(sam2_config),
                        "text_encoder": text.name, "freeze_base": freeze_base}
    return model.to(device)
