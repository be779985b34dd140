"""Building the ViewSAM a training run describes, and choosing what each stage trains."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from raysys.training.config import MODULE_GROUPS, TrainConfig

__all__ = ["sam2_yaml_text", "sam2_image_size", "build_model", "set_trainable",
           "base_trainable", "loss_keys"]


def sam2_yaml_text(sam2_config: str | None, image_size: int | None = None) -> str:
    """The SAM2 YAML of a run as text, optionally resized to ``image_size``.

    Resizing changes ``model.image_size`` and the memory attention's RoPE ``feat_sizes``
    (``image_size / 16``); parameters are unchanged. The text travels to the workers and is
    saved in every checkpoint, so a model rebuilds without the original file.
    """
    from omegaconf import OmegaConf

    from raysys.viewsam.base import resolve_sam2_config

    cfg = OmegaConf.load(resolve_sam2_config(sam2_config))
    if image_size is not None:
        cfg.model.image_size = int(image_size)
        layer = cfg.model.memory_attention.layer
        side = int(image_size) // 16
        for att in ("self_attention", "cross_attention"):
            if "feat_sizes" in layer[att]:
                layer[att].feat_sizes = [side, side]
    return OmegaConf.to_yaml(cfg)


def sam2_image_size(yaml_text: str) -> int:
    """``model.image_size`` of a SAM2 YAML text."""
    from omegaconf import OmegaConf

    return int(OmegaConf.create(yaml_text).model.image_size)


def build_model(cfg: TrainConfig, yaml_text: str, device: str | torch.device = "cpu",
                build_spec: dict | None = None):
    """Build the run's ViewSAM (random init; weights come from checkpoints).

    Args:
        cfg: the run's config (model, variant, SAM2 / text encoder specs).
        yaml_text: SAM2 YAML (:func:`sam2_yaml_text`).
        build_spec: a checkpoint's ``build_spec`` to follow instead of ``cfg``'s specs.
    """
    from raysys.viewsam import build_viewsam

    spec = build_spec or {}
    with tempfile.TemporaryDirectory(prefix="raysys-sam2-") as tmp:
        path = Path(tmp) / "sam2.yaml"
        path.write_text(yaml_text)
        model = build_viewsam(cfg.model_config, sam2_config=path,
                              sam2_checkpoint=spec.get("sam2_checkpoint", cfg.sam2_checkpoint),
                              text_encoder=spec.get("text_encoder", cfg.text_encoder),
                              device=device, freeze_base=spec.get("freeze_base"))
    model.build_spec = {**model.build_spec, "sam2_config": cfg.sam2_config,
                        "sam2_yaml": yaml_text,
                        "sam2_checkpoint": spec.get("sam2_checkpoint", cfg.sam2_checkpoint)}
    return model


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
