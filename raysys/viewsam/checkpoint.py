"""Self-describing ViewSAM checkpoints: weights + the run's config + the build spec.

The files (``checkpoint.json`` + ``model.safetensors``; no pickle) are
:mod:`raysys.viewsam.checkpoint_format`'s; this module turns a checkpoint into a model.
A payload (what :func:`read_checkpoint` returns, what :func:`write_checkpoint` takes) has:

* ``model``: state dict without the parts rebuilt from the spec (a pretrained text
  encoder; a SAM2 base frozen from a checkpoint file);
* ``optimizer``: AdamW state of the current stage (epoch checkpoints only);
* ``stage``, ``stage_epoch``: stage index and epochs done in it; ``epoch``: epochs done;
* ``history``: per-epoch metric rows so far; ``config``: the training run's config as a
  dict (opaque here); ``model_config``: the ``ViewSAMConfig`` the model was built with;
* ``calibration``: the tracker's thresholds chosen on the training clips (final only);
* ``build_spec``: ``model.build_spec`` plus the SAM2 YAML text and checkpoint path.

:func:`load_viewsam_checkpoint` rebuilds the model from ``model_config`` and the build spec
(:func:`build_from_spec`) and loads the weights strictly: a missing or unexpected key or a
shape mismatch is an error naming the first few, before anything loads, unless
``allow_partial`` (``--allow-partial``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from raysys.config import from_dict
from raysys.errors import UserError
from raysys.viewsam.checkpoint_format import (
    LEGACY_FILE,
    META_FILE,
    WEIGHTS_FILE,
    checkpoint_digest,
    checkpoint_dir,
    convert_legacy_checkpoint,
    is_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from raysys.viewsam.config import RETIRED_FIELDS, ViewSAMConfig
from raysys.viewsam.safe_load import StateDiff, load_state

__all__ = ["META_FILE", "WEIGHTS_FILE", "LEGACY_FILE", "model_state", "skipped_prefixes",
           "write_checkpoint", "read_checkpoint", "checkpoint_dir", "checkpoint_digest",
           "is_checkpoint", "convert_legacy_checkpoint", "LoadedCheckpoint",
           "load_viewsam_checkpoint", "check_viewsam_checkpoint", "model_from_payload",
           "load_weights", "build_from_spec", "payload_model_config"]

log = logging.getLogger(__name__)
_FIX = ("it was edited or written for another model: re-train it, or pass --allow-partial "
        "to load what fits (the rest keeps its random init)")


def skipped_prefixes(build_spec: dict) -> tuple[str, ...]:
    """State-dict prefixes left out of checkpoints because the spec rebuilds them."""
    out = []
    if not str(build_spec.get("text_encoder", "")).startswith("random:"):
        out.append("text_encoder.")  # pretrained weights from a package or a local folder
    if build_spec.get("freeze_base") and build_spec.get("sam2_checkpoint"):
        out.append("sam2.")  # frozen base = the SAM2 checkpoint file
    return tuple(out)


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict minus :func:`skipped_prefixes`, on the CPU."""
    skip = skipped_prefixes(model.build_spec)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()
            if not k.startswith(skip)}


def build_from_spec(model_cfg: ViewSAMConfig, spec: dict,
                    device: str | torch.device = "cpu") -> nn.Module:
    """Build a ViewSAM (random init) from its config and a build spec.

    Args:
        model_cfg: the ViewSAM config (modules, ablations).
        spec: ``sam2_yaml`` (the SAM2 YAML text), ``sam2_config`` (its original name),
            ``sam2_checkpoint`` (a frozen base file or ``None``), ``text_encoder`` and
            ``freeze_base`` (``None``: frozen iff a SAM2 checkpoint is given).
    """
    from raysys.viewsam import build_viewsam

    with tempfile.TemporaryDirectory(prefix="raysys-sam2-") as tmp:
        path = Path(tmp) / "sam2.yaml"
        path.write_text(spec["sam2_yaml"])
        model = build_viewsam(model_cfg, sam2_config=path,
                              sam2_checkpoint=spec.get("sam2_checkpoint"),
                              text_encoder=spec["text_encoder"], device=device,
                              freeze_base=spec.get("freeze_base"))
    model.build_spec = {**model.build_spec, "sam2_config": spec.get("sam2_config"),
                        "sam2_yaml": spec["sam2_yaml"],
                        "sam2_checkpoint": spec.get("sam2_checkpoint")}
    return model


def payload_model_config(payload: dict) -> ViewSAMConfig:
    """The ``ViewSAMConfig`` of a checkpoint payload.

    Checkpoints written before ``model_config`` was stored carry it inside the training
    config (``config["model"]``, with the ID-agnostic variant switching the consistency
    loss off).
    """
    if payload.get("model_config") is not None:
        return from_dict(ViewSAMConfig, payload["model_config"])
    # written before ``model_config`` was stored: the training config's ``model``, without
    # the fields ViewSAMConfig no longer has
    train = payload.get("config") or {}
    old = {k: v for k, v in (train.get("model") or {}).items() if k not in RETIRED_FIELDS}
    cfg = from_dict(ViewSAMConfig, old)
    if train.get("variant") == "id_agnostic":
        cfg = dataclasses.replace(cfg, use_consistency_loss=False)
    return cfg


def load_weights(model: nn.Module, state: dict, name: str, *,
                 allow_partial: bool = False) -> StateDiff:
    """Load a checkpoint's state dict into a ViewSAM built from its spec, strictly.

    Keys the build spec rebuilds (:func:`skipped_prefixes`) are never missing. Returns the
    differences (empty unless ``allow_partial``).

    Raises:
        UserError: a missing or unexpected key or a shape mismatch (the first few named),
            unless ``allow_partial``.
    """
    return load_state(model, state, name, allow_partial=allow_partial,
                      skip=skipped_prefixes(model.build_spec), hint=_FIX)


@dataclass
class LoadedCheckpoint:
    model: nn.Module  # the rebuilt ViewSAM, weights loaded, in eval mode
    config: dict  # the run's training config, as stored (``TrainConfig`` fields)
    epoch: int  # epochs trained
    missing_keys: list[str] = field(default_factory=list)  # expected but absent (partial)
    unexpected_keys: list[str] = field(default_factory=list)  # present but unknown (partial)
    history: list[dict] = field(default_factory=list)  # per-epoch metrics
    mismatched_keys: list[str] = field(default_factory=list)  # other shape (partial)


def load_viewsam_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                            *, allow_partial: bool = False) -> LoadedCheckpoint:
    """Rebuild ViewSAM from a checkpoint (config + build spec) and load its weights.

    Args:
        path: checkpoint folder (or one of its files).
        device: where to put the model.
        allow_partial: load what fits and log the rest, instead of raising on a missing or
            unexpected key or a shape mismatch.

    Raises:
        FileNotFoundError, UserError: no checkpoint there, an old-format one (the message
            names the converter), a SAM2 ``.pt``, a refused SAM2 YAML, weights that do not
            fit (see :func:`load_weights`).
    """
    return model_from_payload(read_checkpoint(path), device, name=f"checkpoint {path}",
                              allow_partial=allow_partial)


def check_viewsam_checkpoint(path: str | os.PathLike, *, allow_partial: bool = False) -> None:
    """Everything :func:`load_viewsam_checkpoint` checks, on the CPU, the model then
    dropped: for a clear error before any work (e.g. before Ray starts)."""
    load_viewsam_checkpoint(path, "cpu", allow_partial=allow_partial)


def model_from_payload(payload: dict, device: str | torch.device = "cpu",
                       name: str = "checkpoint", *,
                       allow_partial: bool = False) -> LoadedCheckpoint:
    """:func:`load_viewsam_checkpoint` for a payload already in memory (``name`` labels
    the messages)."""
    spec = payload.get("build_spec") or {}
    if not spec.get("sam2_yaml") or not spec.get("text_encoder"):
        raise UserError(f"{name} has no build spec (the SAM2 YAML and text encoder its model "
                        "is rebuilt from): not a `raysys train` checkpoint")
    model = build_from_spec(payload_model_config(payload), spec, device="cpu")
    diff = load_weights(model, payload["model"], name, allow_partial=allow_partial)
    # tracker thresholds calibrated on the training clips (raysys.training.calibrate)
    model.calibration = payload.get("calibration") or {}
    return LoadedCheckpoint(model=model.to(device).eval(), config=payload.get("config") or {},
                            epoch=int(payload.get("epoch", 0)), missing_keys=diff.missing,
                            unexpected_keys=diff.unexpected, history=payload.get("history", []),
                            mismatched_keys=diff.mismatched)
