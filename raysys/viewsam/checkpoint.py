"""Self-describing ViewSAM checkpoints: weights + the run's config + the build spec.

A checkpoint directory holds ``model.pt`` (``torch.save`` of a dict) and ``config.json``
(the same config and spec, readable). ``model.pt`` keys:

* ``model``: state dict without the parts rebuilt from the spec (a pretrained text
  encoder; a SAM2 base frozen from a checkpoint file);
* ``optimizer``: AdamW state of the current stage (epoch checkpoints only);
* ``stage``, ``stage_epoch``: stage index and epochs done in it; ``epoch``: epochs done;
* ``history``: per-epoch metric rows so far; ``config``: the training run's config as a
  dict (opaque here); ``model_config``: the ``ViewSAMConfig`` the model was built with;
* ``calibration``: the tracker's thresholds chosen on the training clips (final only);
* ``build_spec``: ``model.build_spec`` plus the SAM2 YAML text and checkpoint path.

:func:`load_viewsam_checkpoint` rebuilds the model from ``model_config`` and the build spec
(:func:`build_from_spec`) and reports missing/unexpected keys.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from raysys.config import from_dict
from raysys.viewsam.config import RETIRED_FIELDS, ViewSAMConfig

__all__ = ["MODEL_FILE", "model_state", "skipped_prefixes", "write_checkpoint",
           "read_checkpoint", "LoadedCheckpoint", "load_viewsam_checkpoint",
           "model_from_payload", "build_from_spec", "payload_model_config"]

MODEL_FILE = "model.pt"
log = logging.getLogger(__name__)


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


def write_checkpoint(directory: str | os.PathLike, payload: dict) -> Path:
    """Write ``model.pt`` + ``config.json`` into ``directory`` (created)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    torch.save(payload, d / MODEL_FILE)
    meta = {k: payload.get(k) for k in ("epoch", "stage", "stage_epoch", "config",
                                          "model_config")}
    meta["build_spec"] = payload.get("build_spec")
    (d / "config.json").write_text(json.dumps(meta, indent=2, default=str))
    return d


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The payload of a checkpoint directory (or its ``model.pt``)."""
    p = Path(path)
    f = p / MODEL_FILE if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"no ViewSAM checkpoint at {p}: expected {f} (a `raysys "
                                f"train` output's final/ folder or an epoch checkpoint)")
    try:
        payload = torch.load(f, map_location="cpu", weights_only=False)
    except Exception as e:  # not a torch file (e.g. a Ray checkpoint manifest)
        raise ValueError(f"{f} is not a ViewSAM checkpoint ({type(e).__name__}: {e}); pass a "
                         "`raysys train` run's final/ folder") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise ValueError(f"{f} is not a ViewSAM checkpoint (no 'model' entry)")
    return payload


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


@dataclass
class LoadedCheckpoint:
    model: nn.Module  # the rebuilt ViewSAM, weights loaded, in eval mode
    config: dict  # the run's training config, as stored (``TrainConfig`` fields)
    epoch: int  # epochs trained
    missing_keys: list[str] = field(default_factory=list)  # expected but absent
    unexpected_keys: list[str] = field(default_factory=list)  # present but unknown
    history: list[dict] = field(default_factory=list)  # per-epoch metrics


def load_viewsam_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                            strict: bool = False) -> LoadedCheckpoint:
    """Rebuild ViewSAM from a checkpoint (config + build spec) and load its weights.

    Args:
        path: checkpoint directory (holding ``model.pt``) or the file itself.
        device: where to put the model.
        strict: raise if keys are missing or unexpected (else they are logged and returned).
    """
    return model_from_payload(read_checkpoint(path), device, strict, name=f"checkpoint {path}")


def model_from_payload(payload: dict, device: str | torch.device = "cpu", strict: bool = False,
                       name: str = "checkpoint") -> LoadedCheckpoint:
    """:func:`load_viewsam_checkpoint` for a payload already in memory (``name`` labels
    the messages)."""
    spec = payload["build_spec"]
    model = build_from_spec(payload_model_config(payload), spec, device="cpu")
    res = model.load_state_dict(payload["model"], strict=False)
    skip = skipped_prefixes(spec)
    missing = [k for k in res.missing_keys if not k.startswith(skip)]
    unexpected = list(res.unexpected_keys)
    if missing or unexpected:
        msg = (f"{name}: {len(missing)} missing keys {missing[:5]}, "
               f"{len(unexpected)} unexpected keys {unexpected[:5]}")
        if strict:
            raise ValueError(msg)
        log.warning(msg)
    # tracker thresholds calibrated on the training clips (raysys.training.calibrate)
    model.calibration = payload.get("calibration") or {}
    return LoadedCheckpoint(model=model.to(device).eval(), config=payload.get("config") or {},
                            epoch=int(payload.get("epoch", 0)), missing_keys=missing,
                            unexpected_keys=unexpected, history=payload.get("history", []))
