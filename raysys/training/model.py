"""Building the ViewSAM a training run describes, and choosing what each stage trains."""

from __future__ import annotations

import torch
from torch import nn

from raysys.training.config import MODULE_GROUPS, TrainConfig
from raysys.viewsam.checkpoint import build_from_spec

__all__ = ["build_model", "set_trainable", "base_trainable", "loss_keys"]


def build_model(cfg: TrainConfig, yaml_text: str, device: str | torch.device = "cpu",
                build_spec: dict | None = None):
    """Build the run's ViewSAM (random init; weights come from checkpoints).

    Args:
        cfg: the run's config (model, variant, SAM2 / text encoder specs).
        yaml_text: SAM2 YAML (:func:`raysys.viewsam.base.sam2_yaml_text`).
        build_spec: a checkpoint's ``build_spec`` to follow instead of ``cfg``'s specs.
    """
    spec = {"sam2_checkpoint": cfg.sam2_checkpoint, "text_encoder": cfg.text_encoder,
            "freeze_base": None, **(build_spec or {}),
            "sam2_config": cfg.sam2_config, "sam2_yaml": yaml_text}
    return build_from_spec(cfg.model_config, spec, device)


def base_trainable(model: nn.Module) -> bool:
    """The SAM2 base may train: it was not frozen at build time (no checkpoint given)."""
    return not model.build_spec.get("freeze_base", True)


def set_trainable(model: nn.Module, groups: tuple[str, ...]) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze ``groups`` (:data:`MODULE_GROUPS`); a frozen base and
    the text encoder stay frozen. Returns the trainable parameters (for the optimizer)."""
    for p in model.parameters():
        p.requires_grad_(False)
    params: list[nn.Parameter] = []
    for g in groups:
        if g == "base" and not base_trainable(model):
            continue
        for name in MODULE_GROUPS[g]:
            mod = getattr(model, name, None)
            if mod is None:
                continue
            for p in mod.parameters():
                p.requires_grad_(True)
                params.append(p)
    return params


def loss_keys(model: nn.Module) -> list[str]:
    """Names of the losses ``model.losses`` returns (fixed per model config), sorted."""
    cfg = model.cfg
    keys = ["mask", "total"]
    if model.candidate_generator is not None:
        keys += ["cg_heatmap", "cg_centerness", "cg_box", "cg_match", "cg_rank"]
    if model.bar is not None:
        keys.append("bar")
    if model.cgct is not None and cfg.use_consistency_loss:
        keys += ["consistency_intra", "consistency_inter"]
    return sorted(keys)
