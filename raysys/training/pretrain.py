"""Pre-training the embedded tiny SAM2 base: the stand-in for SAM2.1's pretrained weights.

ViewSAM sits on a *pretrained*, frozen SAM2 (paper §3.3). SAM2.1 weights come from the
internet, which these machines cannot reach, and a random-init base cannot be turned into a
tracker in a CPU-minutes training budget. So the project makes its own small pretrained
base, the way SAM2 itself is made: promptable video segmentation, class-agnostic.

* Data: a generated benchmark with a seed of its own (scenes disjoint from every benchmark
  the report generates), its train split, all objects' masks. This is supervised
  pre-training of the foundation model on *other* data, like SAM2 on SA-V; it never sees
  the benchmark a report scores, nor any text or identity (the expression text reaches no
  trained part: the text paths are switched off).
* Task: SAM2 alone (no VC-CMA, Candidate Generator, BAR or CGCT); each object of a clip is
  prompted with its box and SAM2's memory carries it between frames;
  mask loss (focal + dice) on every frame (prompting every frame where the object is
  visible; :func:`raysys.viewsam.prompts.plan_slots`). In ``TrainConfig`` terms:
  ``supervision="full"``,
  ``variant="refer_agnostic"`` (every object is a target), one stage training ``base``.
* Output: a SAM2-format ``.pt`` (``{"model": state_dict}``, fp16 to halve its size) that
  ``build_sam2_base`` loads like any SAM2 checkpoint. The package ships one made with
  ``raysys pretrain-base`` (see :data:`raysys.viewsam.base.EMBEDDED_SAM2_CHECKPOINT`).
"""

from __future__ import annotations

import os
from pathlib import Path

from raysys.training.config import StageConfig, TrainConfig, from_dict

__all__ = ["PRETRAIN_SEED", "pretrain_config", "export_base"]

PRETRAIN_SEED = 1000  # master seed of the pre-training data (reports use 0 by default)


def pretrain_config(**overrides) -> TrainConfig:
    """The base pre-training schedule (128 px, T=4, all objects, SAM2 only)."""
    base = dict(
        supervision="full", variant="refer_agnostic", clip_frames=4, clip_stride=2,
        image_size=128, sam2_image_size=128, max_objects=6, max_samples=1000,
        model={"use_vc_cma": False, "use_candidate_generator": False, "use_bar": False,
               "use_cgct": False, "prompt_source": "teacher"},
        stages=(StageConfig("base", ("base",), 2, 1e-3),))
    return from_dict(TrainConfig, base | overrides)


def export_base(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the SAM2 base of a ViewSAM checkpoint as a SAM2 ``.pt`` (fp16 weights)."""
    import torch

    from raysys.training.checkpoint import read_checkpoint

    payload = read_checkpoint(checkpoint)
    sd = {k[len("sam2."):]: v.half() if v.is_floating_point() else v
          for k, v in payload["model"].items() if k.startswith("sam2.")}
    if not sd:
        raise ValueError(f"checkpoint {checkpoint} holds no SAM2 weights (a frozen base is not "
                         "saved in ViewSAM checkpoints; export a pre-training run's final/)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save({"model": sd, "yaml": payload["build_spec"].get("sam2_yaml"),
                "epoch": payload.get("epoch")}, tmp)
    os.replace(tmp, out)
    return out
