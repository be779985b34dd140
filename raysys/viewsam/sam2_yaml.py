"""SAM2 YAMLs that can only build SAM2: an allowlist of the classes a ``_target_`` may name.

Hydra's ``instantiate`` imports and calls whatever a ``_target_`` names, so a YAML handed
to raysys (``--sam2-config``, or the one a checkpoint carries in its build spec) could
otherwise run any function: ``shutil.copyfile``, ``os.system``, ``builtins.exec``. Before
anything is instantiated, :func:`check_sam2_config` walks the whole config tree (mappings
and lists, after OmegaConf interpolation) and refuses

* a ``_target_`` outside :data:`SAM2_TARGETS` (the ``sam2.modeling`` classes that SAM2.1's
  own model configs, ``configs/sam2.1/*.yaml`` and ``configs/sam2/*.yaml`` of the sam2
  1.1.0 package, and the embedded ``configs/sam2_tiny.yaml`` use, plus the two model
  classes raysys itself sets at the top);
* any other Hydra key (``_args_``, ``_partial_``, ``_convert_``, ``_recursive_``, ...):
  SAM2's configs use none, and they are how a call is smuggled in
  (``_partial_``, positional ``_args_`` to an allowed name);
* a ``_target_`` that is not a plain string.

:func:`instantiate_sam2` is the one way raysys instantiates a SAM2 YAML
(``raysys.viewsam.base.build_sam2_base``, ``raysys.baselines.sam2_video``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from raysys.errors import UserError

__all__ = ["SAM2_TARGETS", "load_sam2_yaml", "read_sam2_yaml", "check_sam2_config",
           "instantiate_sam2"]

SAM2_TARGETS = frozenset({
    # the model: SAM2Base (every SAM2 model config); the video predictor, a SAM2Base
    # subclass, is what sam2.build_sam.build_sam2_video_predictor (and raysys's SAM2
    # baseline) puts there instead
    "sam2.modeling.sam2_base.SAM2Base",
    "sam2.sam2_video_predictor.SAM2VideoPredictor",
    # image encoder: Hiera trunk + FPN neck
    "sam2.modeling.backbones.image_encoder.ImageEncoder",
    "sam2.modeling.backbones.image_encoder.FpnNeck",
    "sam2.modeling.backbones.hieradet.Hiera",
    "sam2.modeling.position_encoding.PositionEmbeddingSine",
    # memory attention
    "sam2.modeling.memory_attention.MemoryAttention",
    "sam2.modeling.memory_attention.MemoryAttentionLayer",
    "sam2.modeling.sam.transformer.RoPEAttention",
    # memory encoder
    "sam2.modeling.memory_encoder.MemoryEncoder",
    "sam2.modeling.memory_encoder.MaskDownSampler",
    "sam2.modeling.memory_encoder.Fuser",
    "sam2.modeling.memory_encoder.CXBlock",
})


def load_sam2_yaml(text: str, source: str):
    """An OmegaConf config from YAML ``text`` (OmegaConf's safe YAML loader), checked with
    its interpolations resolved (:func:`check_sam2_config`); ``source`` names it in errors.
    The config returned keeps its interpolations (edits propagate through them).

    Raises:
        UserError: not valid YAML, an interpolation that does not resolve, a refused key.
    """
    from omegaconf import DictConfig, OmegaConf

    try:
        cfg = OmegaConf.create(text)
        if not isinstance(cfg, DictConfig):
            raise ValueError("expected a mapping at the top")
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # yaml / omegaconf errors: many types, all the file's fault
        msg = " ".join(str(e).split())[:200]
        raise UserError(f"SAM2 config {source} cannot be read as a SAM2 YAML ({msg})") from None
    check_sam2_config(resolved, source)
    return cfg


def read_sam2_yaml(path: str | os.PathLike):
    """:func:`load_sam2_yaml` of a YAML file."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"SAM2 config {path} cannot be read ({e})") from None
    return load_sam2_yaml(text, str(path))


def _walk(node: Any, where: str):
    """``(path, key, value)`` of every mapping entry under ``node`` (lists included)."""
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, DictConfig | dict):
        for k, v in node.items():
            path = f"{where}.{k}" if where else str(k)
            yield where, str(k), v
            yield from _walk(v, path)
    elif isinstance(node, ListConfig | list | tuple):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}[{i}]")


def check_sam2_config(cfg, source: str) -> None:
    """Refuse a SAM2 config that would instantiate anything but :data:`SAM2_TARGETS`.

    Args:
        cfg: the whole config (an OmegaConf ``DictConfig`` or a plain dict), resolved.
        source: the file (or checkpoint field) it came from, for the message.

    Raises:
        UserError: naming the ``_target_`` (or Hydra key), where it is, and ``source``.
    """
    for where, key, value in _walk(cfg, ""):
        at = where or "the top level"
        if key == "_target_":
            if not isinstance(value, str) or value not in SAM2_TARGETS:
                raise UserError(
                    f"SAM2 config {source}: _target_ {value!r} at {at} is not a SAM2 class "
                    "raysys instantiates; a SAM2 YAML may only name sam2.modeling classes "
                    "(raysys.viewsam.sam2_yaml.SAM2_TARGETS); use a SAM2 config of the sam2 "
                    "package or the embedded 'tiny' one")
        elif len(key) > 2 and key.startswith("_") and key.endswith("_"):
            raise UserError(
                f"SAM2 config {source}: Hydra key {key!r} at {at} is not allowed in a SAM2 "
                "YAML (only _target_ naming a sam2.modeling class is); remove it")


def instantiate_sam2(cfg, source: str, target: str, overrides: dict | None = None):
    """Build ``cfg.model`` as ``target`` after :func:`check_sam2_config`: the one place a
    SAM2 YAML is instantiated.

    Args:
        cfg: a SAM2 config with a top-level ``model`` (e.g. from :func:`load_sam2_yaml`).
        source: where it came from, for messages.
        target: the model class, one of :data:`SAM2_TARGETS` (``SAM2Base``, or the video
            predictor).
        overrides: extra ``model`` fields merged in (raysys's own, e.g. the predictor's
            post-processing switches).

    Returns:
        the instantiated model (on the CPU).
    """
    from hydra.utils import instantiate
    from omegaconf import DictConfig, OmegaConf

    assert target in SAM2_TARGETS, f"{target} is not in SAM2_TARGETS"
    if not isinstance(cfg.get("model"), DictConfig | dict):
        raise UserError(f"SAM2 config {source} has no top-level 'model' entry; pass a SAM2 "
                        "model YAML such as configs/sam2.1/sam2.1_hiera_t.yaml")
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    check_sam2_config(cfg, source)
    cfg.model._target_ = target
    if overrides:
        cfg = OmegaConf.merge(cfg, {"model": overrides})
    check_sam2_config(cfg, source)  # the overrides are raysys's own: a guard, not a filter
    return instantiate(cfg.model, _recursive_=True)
