"""Pre-training the SAM2 base the way SAM2 is trained: promptable video segmentation.

ViewSAM sits on a *pretrained*, frozen SAM2 (paper §3.3). SAM2.1's weights come from the
internet, which these machines cannot reach, so the project makes its own small base (the
tiny SAM2 config, :data:`raysys.viewsam.base.TINY_SAM2_CONFIG`) with this module. No Ray,
no device of its own: the caller passes ``device`` (``raysys pretrain-base``,
``benchmarks/gpu/pretrain_base.py``).

* **Data.** Generated scenes (:mod:`raysys.synth`, both domains, ``train`` split) of the
  master seed :data:`PRETRAIN_SEED` (1000), rendered in a process pool
  (:func:`generate_scenes`) and kept in memory at the model's input size. Only the objects'
  visible masks and boxes are used (every category: people, cars, bicycles): class-agnostic
  promptable video segmentation, no text, no identities across views. The held-out scenes
  of the metrics are the ``test`` split of :data:`EVAL_SEED` (1001). Both are disjoint
  from every benchmark a report scores (seeds 0 and 11; the label-quality benchmarks 0-4
  and 10-13) and from the person detector's (2000, 2001).
* **Initial weights**: the shipped base (``"embedded"``, pre-trained by this project with a
  box on every frame, also on seed-1000 scenes) by default, as SAM2 starts its video
  training from SAM; ``init=None`` starts from random weights (much slower to learn).
* **Frames** are resized to the square input as the tracker resizes them (bilinear without
  antialiasing, ``F.interpolate`` in ``ViewSAM.encode_clip``); GT masks by nearest
  neighbour; everything is scored at the model's input size.
* **Clips** (:class:`ScenePool`): one view of one scene, ``T = 8`` frames (frame step 1 or
  2, time reversed or not, flipped horizontally or not, all at random); the objects
  visible on the first frame (at most ``max_objects``) are the batch dimension of SAM2,
  all objects of all clips of a step together, each reading its clip's image features.
* **Prompts**, as SAM2 trains its video task: the object's box (SAM2's box noise: 10% of
  its side, at most 20 px at 1024) on the first frame, an initial conditioning frame
  without memory; SAM2's memory carries the rest. With probability ``p_second_prompt`` an
  object also gets its box on one later frame where it is visible, with
  ``p_every_prompt`` on every such frame (the tracker re-prompts from its proposals); those
  frames read the memory too, as in the tracker. A box is two points labelled 2 and 3
  (``SAM2VideoPredictor.add_new_points_or_box``); an unprompted frame gets two padding
  points (label -1), the very prompt tokens :func:`raysys.viewsam.base.decode_masks` gives
  the tracker's mask decoder.
* **Step** (:func:`clip_losses`): SAM2's image encoder once per frame, then frame by frame
  in time order ``SAM2Base._track_step`` + ``_encode_memory_in_output`` with SAM2's
  ``output_dict`` (first frame in ``cond_frame_outputs``, the others in
  ``non_cond_frame_outputs``): what ``SAM2Train.track_step`` does without its correction
  clicks, because ``SAM2Base.track_step`` hides the IoU and object-score outputs the loss
  needs in training mode.
* **Loss** (SAM2's ``MultiStepMultiMasksAndIous`` with the SAM2.1 weights): focal (20) +
  dice (1) + IoU-prediction L1 (1) on the frames where the object is present, object-score
  BCE (1) on every frame (target 0 where it is absent); summed over frames, averaged over
  objects. Single-mask output: the project's tracker decodes SAM2's single mask on every
  frame (``decode_masks``), so that is the output trained (with two prompt points, box or
  padding, on every frame SAM2's own rule ``_use_multimask`` asks for one mask as well;
  :func:`sam2_frame_losses` keeps SAM2's lowest-loss choice for several masks).
* **Optimisation**: AdamW (weight decay on matrices only), linear warm-up then cosine decay
  over the budget (``steps`` and/or wall-clock ``minutes``), gradient clipping, bf16
  autocast on CUDA.
* **Evaluation** (:func:`evaluate_base`) on held-out clips through the tracker's own SAM2
  steps (memory conditioning, ``decode_masks``, ``_encode_new_memory``, as
  ``ViewSAM.track_frame`` without BAR): memory-only IoU (box on the first frame, IoU over
  the visible object-frames after it) and box-prompted IoU (box on every visible frame).
* **Output** (:func:`run_pretraining`): ``sam2_base.pt`` (``{"model": fp16 state dict,
  "yaml": SAM2 YAML text, ...}``, loaded by :func:`raysys.viewsam.base.build_sam2_base`
  like any SAM2 checkpoint), ``metrics.json`` and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raysys.io.fingerprint import file_digest
from raysys.io.jsonio import write_json_file
from raysys.training.pretrain_data import (
    Clips,
    SceneArrays,
    ScenePool,
    generate_scenes,
    load_dataset_scenes,
    load_scene_arrays,
    render_scene_arrays,
    scene_specs,
)
from raysys.training.pretrain_export import device_name, export_base, model_card
from raysys.training.pretrain_sam2 import (
    STREAM_FRAMES,
    backbone_features,
    clip_losses,
    eval_clip_batches,
    evaluate_base,
    iou_summary,
    load_base,
    sam2_frame_losses,
    sam2_track_step,
    track_clips,
)

__all__ = [
    "PRETRAIN_SEED",
    "EVAL_SEED",
    "STREAM_FRAMES",
    "PretrainConfig",
    "SceneArrays",
    "Clips",
    "ScenePool",
    "scene_specs",
    "render_scene_arrays",
    "load_scene_arrays",
    "load_dataset_scenes",
    "generate_scenes",
    "load_base",
    "sam2_track_step",
    "sam2_frame_losses",
    "backbone_features",
    "clip_losses",
    "track_clips",
    "iou_summary",
    "evaluate_base",
    "eval_clip_batches",
    "model_card",
    "train_base",
    "export_base",
    "run_pretraining",
]

log = logging.getLogger(__name__)

PRETRAIN_SEED = 1000  # master seed of the pre-training scenes (train split, both domains)
EVAL_SEED = PRETRAIN_SEED + 1  # held-out scenes of metrics.json (test split, both domains)


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that determines a pre-training run (the CLI only overrides fields)."""

    image_size: int = 256  # square model input (at 128 px people are 1-3 px wide)
    sam2_config: str | None = None  # SAM2 YAML (None: the embedded tiny config)
    # initial weights: "embedded" (the shipped base, made by this project on seed-1000
    # scenes: a head start, as SAM2 starts from SAM), a SAM2 .pt, or None (random init)
    init: str | None = "embedded"
    clip_frames: int = 8  # T
    frame_steps: tuple[int, ...] = (1, 2)  # frame step inside a clip, chosen per clip
    p_reverse: float = 0.5  # clip played backwards
    p_flip: float = 0.5  # clip flipped horizontally
    max_objects: int = 6  # objects per clip (random among those visible on frame 0)
    min_pixels: int = 4  # mask pixels (model input) for a box prompt / a first-frame object
    p_second_prompt: float = 0.5  # an object also boxed on one later visible frame
    p_every_prompt: float = 0.1  # an object boxed on every visible frame
    box_noise: float = 0.1  # SAM2's box noise: fraction of the box side ...
    box_noise_bound: float = 20.0  # ... at most this many pixels at 1024 px (scaled)
    loss_focal: float = 20.0
    loss_dice: float = 1.0
    loss_iou: float = 1.0
    loss_class: float = 1.0
    batch: int = 8  # clips per step
    steps: int | None = None  # optimiser steps (budget; with minutes: whichever ends first)
    minutes: float | None = None  # wall-clock training budget
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of the budget
    min_lr_ratio: float = 0.05  # cosine floor
    grad_clip: float = 1.0
    amp: bool = True  # bf16 autocast (CUDA only)
    seed: int = PRETRAIN_SEED  # master seed of the training scenes (and of the sampler)
    scenes: int = 48  # training scenes (split over the domains)
    domains: tuple[str, ...] = ("In-domain", "Cross-domain")
    eval_seed: int = EVAL_SEED
    eval_scenes: int = 4  # held-out scenes (test split of eval_seed)
    eval_clips: int = 64  # held-out clips (one view, T frames, step 1)
    eval_init: bool = True  # evaluate the initial weights too
    synth: dict = field(default_factory=dict)  # SynthConfig overrides (tests: small scenes)
    workers: int = 0  # scene-rendering processes (0: every CPU)
    log_every: int = 20  # steps between progress lines
    checkpoint_minutes: float = 2.0  # write sam2_base.pt this often during training

    def __post_init__(self) -> None:
        if self.image_size % 16 or self.image_size < 32:
            raise ValueError(f"image_size must be a multiple of 16 >= 32, got {self.image_size}")
        if self.clip_frames < 2:
            raise ValueError(f"clip_frames must be >= 2, got {self.clip_frames}")
        if self.steps is None and self.minutes is None:
            raise ValueError("give a budget: steps and/or minutes")
        if (self.steps is not None and self.steps < 1) or (
                self.minutes is not None and self.minutes <= 0):
            raise ValueError(f"budget must be positive: steps={self.steps}, "
                             f"minutes={self.minutes}")
        if self.batch < 1 or self.max_objects < 1 or self.scenes < 1 or self.eval_scenes < 0:
            raise ValueError("batch, max_objects and scenes must be >= 1, eval_scenes >= 0")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ----------------------------------------------------------------------------- training


def _lr_factor(progress: float, cfg: PretrainConfig) -> float:
    if progress < cfg.warmup:
        return max(progress / cfg.warmup, 1e-3)
    p = min(1.0, (progress - cfg.warmup) / max(1e-9, 1 - cfg.warmup))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def _optimizer(sam2, cfg: PretrainConfig, device):
    import torch

    decay, no_decay = [], []
    for _, p in sam2.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kw = {"fused": True} if torch.device(device).type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), **kw)


def train_base(sam2, pool: ScenePool, cfg: PretrainConfig, device="cpu",
               on_checkpoint: Callable[[int], None] | None = None,
               deadline: float | None = None) -> dict:
    """Pre-train ``sam2`` in place on random clips of ``pool`` for the budget of ``cfg``
    (and until ``deadline``, a ``time.perf_counter()`` value, at the latest: the learning
    rate schedule then spans the time left).

    Returns ``{"steps", "clips", "objects", "seconds", "history": [progress rows],
    "final_losses": mean of the last rows' losses}``. ``on_checkpoint(step)`` is called every
    ``cfg.checkpoint_minutes``.
    """
    import torch

    dev = torch.device(device)
    amp = cfg.amp and dev.type == "cuda"
    rng = np.random.default_rng([cfg.seed, 1])
    torch.manual_seed(cfg.seed)
    opt = _optimizer(sam2, cfg, dev)
    params = [p for g in opt.param_groups for p in g["params"]]
    sam2.train()
    budget_s = None if cfg.minutes is None else 60.0 * cfg.minutes
    history: list[dict] = []
    keys = ("total", "focal", "dice", "iou", "class")
    run = {k: torch.zeros((), device=dev) for k in keys}
    run_n, step, n_clips, n_obj = 0, 0, 0, 0
    t0 = last = last_ck = time.perf_counter()
    if deadline is not None:
        budget_s = min(budget_s if budget_s is not None else math.inf, max(deadline - t0, 1.0))
    last_step = 0
    while True:
        now = time.perf_counter() - t0
        prog = max(0.0 if cfg.steps is None else step / cfg.steps,
                   0.0 if budget_s is None else now / budget_s)
        if prog >= 1.0:
            break
        lr = cfg.lr * _lr_factor(prog, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        clips = pool.sample(rng, cfg.batch, cfg, train=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            losses = clip_losses(sam2, clips, cfg)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        step += 1
        n_clips += cfg.batch
        n_obj += clips.num_objects
        for k in keys:
            run[k] += losses[k].detach().float()
        run_n += 1
        if step % cfg.log_every == 0 or step == 1 or (
                cfg.steps is not None and step >= cfg.steps):
            tn = time.perf_counter()
            row = {"step": step, "seconds": round(tn - t0, 1), "lr": lr,
                   "clips": n_clips, "grad_norm": round(float(gnorm), 4),
                   **{k: round(float(run[k]) / run_n, 5) for k in keys}}
            rate = (step - last_step) / max(tn - last, 1e-9)
            row["steps_per_s"] = round(rate, 3)
            row["clips_per_s"] = round(rate * cfg.batch, 2)
            history.append(row)
            log.info("step %d  %.0f s  loss %.4f (focal %.4f dice %.3f iou %.3f class %.3f)"
                     "  lr %.2e  %.2f steps/s  %.1f clips/s", step, row["seconds"],
                     row["total"], row["focal"], row["dice"], row["iou"], row["class"], lr,
                     row["steps_per_s"], row["clips_per_s"])
            run = {k: torch.zeros((), device=dev) for k in keys}
            run_n, last, last_step = 0, tn, step
            if on_checkpoint is not None and tn - last_ck >= 60 * cfg.checkpoint_minutes:
                on_checkpoint(step)
                last_ck = time.perf_counter()
    seconds = time.perf_counter() - t0
    tail = history[-3:] if history else []
    final = {k: round(float(np.mean([r[k] for r in tail])), 5) for k in keys} if tail else {}
    return {"steps": step, "clips": n_clips, "objects": n_obj, "seconds": round(seconds, 1),
            "steps_per_s": round(step / max(seconds, 1e-9), 3),
            "clips_per_s": round(n_clips / max(seconds, 1e-9), 2),
            "history": history, "final_losses": final}


def _render(cfg: PretrainConfig, train_scenes, eval_scenes):
    """The training and held-out scenes: those given, else rendered from the config's seeds."""
    if train_scenes is None:
        specs = scene_specs(cfg.seed, cfg.scenes, "train", cfg.domains, cfg.synth)
        log.info("rendering %d training scenes (seed %d) at %d px", len(specs), cfg.seed,
                 cfg.image_size)
        train_scenes = generate_scenes(specs, cfg.image_size, cfg.workers)
    if eval_scenes is None and cfg.eval_scenes:
        specs = scene_specs(cfg.eval_seed, cfg.eval_scenes, "test", cfg.domains, cfg.synth)
        log.info("rendering %d held-out scenes (seed %d)", len(specs), cfg.eval_seed)
        eval_scenes = generate_scenes(specs, cfg.image_size, cfg.workers)
    return train_scenes, eval_scenes


def _init_sha256(init: str | None) -> str | None:
    """The sha256 of the initial weights' file (None: random init)."""
    if init is None:
        return None
    from raysys.viewsam.base import resolve_sam2_checkpoint

    return file_digest(resolve_sam2_checkpoint(init))


def run_pretraining(cfg: PretrainConfig, out: str | os.PathLike, device="cpu",
                    command: str | None = None,
                    train_scenes: Sequence[SceneArrays] | None = None,
                    eval_scenes: Sequence[SceneArrays] | None = None,
                    deadline: float | None = None) -> dict:
    """The whole run: render scenes, pre-train, evaluate, write ``out/sam2_base.pt``,
    ``out/metrics.json`` and ``out/MODEL_CARD.md``. Returns the metrics.

    Args:
        command: the command line that reproduces the run (for the model card).
        train_scenes, eval_scenes: ready scenes instead of rendering them.
        deadline: ``time.perf_counter()`` value by which training stops at the latest
            (the caller keeps time for the final evaluation and export after it).
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    dev = torch.device(device)
    train_scenes, eval_scenes = _render(cfg, train_scenes, eval_scenes)
    data_s = time.perf_counter() - t_start
    pool = ScenePool(train_scenes, dev)
    eval_batches: list[Clips] = []
    if eval_scenes:
        eval_batches = eval_clip_batches(ScenePool(eval_scenes, "cpu"), cfg, cfg.eval_clips,
                                         seed=cfg.eval_seed)
    sam2 = load_base(cfg.init, cfg.image_size, cfg.sam2_config, device=dev)
    n_params = sum(p.numel() for p in sam2.parameters())
    log.info("SAM2 base: %d parameters, init %s, %d training sequences (%d frames each), "
             "%d held-out clips", n_params, cfg.init or "random", pool.num_sequences,
             pool.num_frames, sum(int(c.frames.shape[0]) for c in eval_batches))
    meta = {"made_by": "raysys pretrain-base", "image_size": cfg.image_size,
            "seed": cfg.seed, "config": cfg.to_dict()}
    ev: dict[str, Any] = {}
    if eval_batches and cfg.eval_init:
        t0 = time.perf_counter()
        ev["init"] = evaluate_base(sam2, eval_batches, device=dev)
        log.info("initial weights: memory IoU %s, box IoU %s (%.0f s)",
                 ev["init"]["memory_iou"], ev["init"]["box_iou"], time.perf_counter() - t0)
    pt = out / "sam2_base.pt"

    def checkpoint(step: int) -> None:
        export_base(sam2, pt, **meta, steps=step, partial=True)
        log.info("checkpoint at step %d -> %s", step, pt)

    tr = train_base(sam2, pool, cfg, dev, on_checkpoint=checkpoint, deadline=deadline)
    export_base(sam2, pt, **meta, steps=tr["steps"])
    if eval_batches:
        t0 = time.perf_counter()
        ev["final"] = evaluate_base(sam2, eval_batches, device=dev)
        ev["seconds"] = round(time.perf_counter() - t0, 1)
        ev["clips"], ev["objects"] = ev["final"]["clips"], ev["final"]["objects"]
        log.info("pre-trained: memory IoU %s, box IoU %s (%.0f s)", ev["final"]["memory_iou"],
                 ev["final"]["box_iou"], ev["seconds"])
    metrics = {
        "command": command, "device": device_name(dev), "torch": torch.__version__,
        "amp": bool(cfg.amp and dev.type == "cuda"), "parameters": n_params,
        "config": cfg.to_dict(),
        "data": {"train_scenes": len(train_scenes), "train_sequences": pool.num_sequences,
                 "frames_per_sequence": pool.num_frames,
                 "train_scene_names": [a.name for a in train_scenes],
                 "eval_scenes": len(eval_scenes or []),
                 "eval_scene_names": [a.name for a in eval_scenes or []],
                 "seconds": round(data_s, 1)},
        "training": {k: v for k, v in tr.items() if k != "history"},
        "history": tr["history"], "eval": ev,
        "init_sha256": _init_sha256(cfg.init),
        "seconds_total": round(time.perf_counter() - t_start, 1),
        "sha256": file_digest(pt),
    }
    write_json_file(out / "metrics.json", metrics, indent=1)
    (out / "MODEL_CARD.md").write_text(model_card(metrics))
    return metrics

