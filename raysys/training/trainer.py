"""Stage 2: train ViewSAM on Ray Train (``TorchTrainer``, DDP) over streamed clips.

Driver (:func:`run_training`): plans sample descriptors, builds the Ray Data pipeline
(descriptors -> decoding actors; one stream per worker holding every epoch still to
train, after the newest checkpoint when the run resumes), runs the ``TorchTrainer`` and
writes ``<out>/``:

* ``ray_train/checkpoint_*``: per-epoch checkpoints in Ray's storage layout (resumable);
* ``metrics.json``: per-epoch losses of every stage; ``loss_curves.png``;
* ``final/``: the last model (weights + config + build spec, no optimizer), loadable with
  :func:`raysys.viewsam.checkpoint.load_viewsam_checkpoint`.

Workers (:func:`train_loop`): build the model, restore the last checkpoint if there is one
(``ray.train.get_checkpoint()``: after a worker failure Ray restarts the group and the
run continues from it), then run the stages in order. Each epoch reads its clips from the
worker's stream (:class:`raysys.training.data.EpochBatches`; a stage's clips carry its
labels, §4.1, :mod:`raysys.training.labels`); each stage freezes everything but its
module groups, gets its own AdamW over the trainable parameters only, and wraps the model
in DDP (gloo on CPU, NCCL on GPU; ``find_unused_parameters`` because ablations and frozen
stages leave parameters without gradients). Each epoch all-reduces its mean losses, and
rank 0 reports them with a checkpoint (``ray.train.report``; every rank reports).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from raysys.config import from_dict, to_dict
from raysys.io import storage
from raysys.runtime import Resources
from raysys.training.config import TrainConfig

__all__ = ["TrainingResult", "run_training", "train_loop", "RUN_NAME"]

log = logging.getLogger(__name__)


def _worker_log() -> logging.Logger:
    """This module's logger, with a handler in Ray's worker and controller processes (where
    the driver's logging setup does not exist; Ray forwards their stderr to the driver)."""
    root = logging.getLogger("raysys")
    if not root.handlers and not logging.getLogger().handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("[raysys train] %(message)s"))
        root.addHandler(h)
        root.setLevel(logging.INFO)
    return log

RUN_NAME = "ray_train"  # the run folder under <out> (Ray's storage layout)
# the fields of raysys.runtime.Resources that training reads (recorded in metrics.json)
TRAIN_RESOURCES = ("workers", "cpus_per_worker", "use_gpu", "loader_cpus", "loaders")


@dataclass(frozen=True)
class TrainingResult:
    out: Path  # the output folder
    final: Path  # final checkpoint folder
    history: list[dict]  # per-epoch metric rows
    samples: int  # training samples per epoch
    seconds: float  # wall time of fit()


# ----------------------------------------------------------------------------- worker


def read_ray_checkpoint(checkpoint) -> dict:
    """The payload of a ``ray.train.Checkpoint``, read from a copy private to this call.

    Not ``checkpoint.as_directory()``: for a checkpoint in remote storage that is one
    folder per node, shared by the node's workers, and a worker arriving after another's
    download has finished downloads it again over the files the other is reading (seen in
    CI: a restarted worker group, two ranks on one node, one killed by SIGBUS)."""
    from raysys.viewsam.checkpoint import read_checkpoint

    with tempfile.TemporaryDirectory(prefix="raysys-ckpt-read-") as d:
        return read_checkpoint(checkpoint.to_directory(d))


def _restore(model, cfg: TrainConfig) -> dict:
    """Training state from Ray's last checkpoint, else from ``cfg.init_checkpoint``."""
    import ray.train

    from raysys.viewsam.checkpoint import load_weights, read_checkpoint

    state = {"stage": 0, "stage_epoch": 0, "epoch": 0, "history": [], "optimizer": None}
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        payload = read_ray_checkpoint(ckpt)
        load_weights(model, payload["model"], f"the run's last checkpoint {ckpt.path}")
        state.update({k: payload[k] for k in state if k in payload})
        if ray.train.get_context().get_world_rank() == 0:
            _worker_log().info("resumed from the checkpoint of epoch %d (%s)", state["epoch"],
                               ckpt.path)
    elif cfg.init_checkpoint:  # e.g. weights pre-trained on referring VOS
        load_weights(model, read_checkpoint(cfg.init_checkpoint)["model"],
                     f"init_checkpoint {cfg.init_checkpoint}")
    return state


class _WithLosses(nn.Module):
    """``forward`` = ViewSAM forward + its losses, so that DDP's search for unused
    parameters walks the loss graph (outputs the losses ignore, such as SAM2's object
    scores, would otherwise count as used and leave DDP waiting for their gradients)."""

    def __init__(self, model: nn.Module, cg_only: bool = False) -> None:
        super().__init__()
        self.model = model
        self.cg_only = cg_only  # a stage training only the CG: its losses alone, no tracking

    def forward(self, frames, text, targets, view_ids=None) -> dict:
        if self.cg_only:
            return self.model.candidate_losses(frames, text, targets, view_ids=view_ids)
        return self.model.losses(self.model(frames, text, targets, view_ids=view_ids), targets)


def _cg_only(model, stage) -> bool:
    return model.candidate_generator is not None and tuple(stage.modules) == (
        "candidate_generator",)


def _wrap(model, world: int, device, cg_only: bool = False):
    """The loss module, in DDP over the currently trainable parameters (re-wrapped per
    stage, as the trainable set changes)."""
    net = _WithLosses(model, cg_only)
    if world <= 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=True)


def _run_epoch(net, model, batches, opt, cfg: TrainConfig, device, keys: list[str]):
    """One pass over this worker's clips of an epoch (``batches``: numpy batches); returns
    (per-key loss sums, steps) tensors, or None when no loss reaches the trainable modules
    (e.g. CGCT without the consistency loss, an ablation): the stage has nothing to
    learn."""
    import torch

    from raysys.training.data import collate

    sums = torch.zeros(len(keys) + 1, dtype=torch.float64, device=device)
    params = [p for g in opt.param_groups for p in g["params"]]
    bf16 = cfg.precision == "bf16" and device.type == "cuda"
    model.train()
    for batch in batches:
        frames, texts, targets, view_ids = collate(batch, device)
        text = {k: v.to(device) for k, v in model.tokenize(texts).items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            losses = net(frames, text, targets, view_ids=view_ids)
        if not losses["total"].requires_grad:
            return None
        opt.zero_grad(set_to_none=True)
        losses["total"].float().backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sums[:-1] += torch.stack([losses[k].detach().double() for k in keys])
        sums[-1] += 1
    return sums


def _epoch_row(sums, keys, stage_index: int, stage, stage_epoch: int, epoch: int,
               seconds: float) -> dict:
    """All-reduce the loss sums over workers -> one metric row."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sums)
    n = max(float(sums[-1]), 1.0)
    mean = {k: float(sums[i]) / n for i, k in enumerate(keys)}
    row = {"epoch": epoch, "stage": stage.name, "stage_index": stage_index,
           "stage_epoch": stage_epoch, "lr": stage.lr, "steps": int(sums[-1]),
           "seconds": round(seconds, 3), "loss": mean.pop("total")}
    return row | {f"loss_{k}": v for k, v in mean.items()}


def _report(row: dict, model, opt, cfg: TrainConfig, state: dict, rank: int) -> None:
    """``ray.train.report`` on every rank; rank 0 attaches the checkpoint."""
    import ray.train

    from raysys.viewsam.checkpoint import model_state, write_checkpoint

    if rank != 0:
        ray.train.report(row, checkpoint=None)
        return
    payload = {"model": model_state(model), "optimizer": opt.state_dict(),
               "stage": state["stage"], "stage_epoch": state["stage_epoch"],
               "epoch": state["epoch"], "history": state["history"], "config": to_dict(cfg),
               "model_config": to_dict(cfg.model_config), "build_spec": model.build_spec}
    with tempfile.TemporaryDirectory(prefix="raysys-ckpt-") as d:
        write_checkpoint(d, payload)
        ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(d))


def train_loop(config: dict) -> None:
    """Ray Train worker function. ``config``: ``{"config": TrainConfig dict, "sam2_yaml",
    "threads", "after_epoch", "validate"}`` (``after_epoch(row, rank)``: an optional hook
    run after each report, e.g. tests inject a worker failure there; ``validate(model, row)
    -> dict``: an optional validation score, run on rank 0 after each epoch, its metrics
    added to that epoch's row and report, e.g. :mod:`raysys.tune`'s validation CVR-IDF1)."""
    import ray.train
    import ray.train.torch
    import torch

    from raysys.training.data import EpochBatches, shard_name
    from raysys.training.labels import stage_model_config, stage_slots
    from raysys.training.model import build_model, loss_keys, set_trainable

    cfg = from_dict(TrainConfig, config["config"])
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, config["sam2_yaml"], device)
    state = _restore(model, cfg)
    model_cfg = model.cfg
    hook: Callable | None = config.get("after_epoch")
    validate: Callable | None = config.get("validate")
    stream = EpochBatches(ray.train.get_dataset_shard(shard_name(rank)), cfg.batch_size)
    slots = stage_slots(cfg)
    for si, stage in enumerate(cfg.stages):
        done = stage.epochs if si < state["stage"] else (
            state["stage_epoch"] if si == state["stage"] else 0)
        if done >= stage.epochs:
            continue
        params = set_trainable(model, stage.modules)
        if not params:  # an ablation switched off everything this stage trains
            if rank == 0:
                _worker_log().info("stage %r skipped: none of its modules %s is in this "
                                   "model", stage.name, list(stage.modules))
            continue
        opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=cfg.weight_decay)
        if si == state["stage"] and done > 0 and state["optimizer"] is not None:
            opt.load_state_dict(state["optimizer"])
        labels = cfg.stage_labels(stage)
        model.cfg = stage_model_config(model_cfg, labels)  # ID-agnostic: no identity loss
        keys = loss_keys(model)
        cg_only = _cg_only(model, stage)
        stage_keys = [k for k in keys if k == "total" or k.startswith("cg_")] if cg_only \
            else keys
        net = _wrap(model, world, device, cg_only)
        for e in range(done, stage.epochs):
            t0 = time.perf_counter()
            sums = _run_epoch(net, model, stream.epoch(slots[si] + e + 1), opt, cfg, device,
                              stage_keys)
            if sums is not None and int(sums[-1]) == 0:
                raise RuntimeError(
                    f"the clip stream holds no clips of stage {stage.name!r}, epoch {e + 1}: "
                    "the driver planned the stream after a newer checkpoint than the one Ray "
                    "Train restored; delete the newest checkpoint_* folder under the run's "
                    "ray_train/ and run the job again")
            if sums is None:
                if rank == 0:
                    _worker_log().info("stage %r skipped: no loss of this model reaches its "
                                       "modules %s", stage.name, list(stage.modules))
                break
            state.update(stage=si, stage_epoch=e + 1, epoch=state["epoch"] + 1)
            row = _epoch_row(sums, stage_keys, si, stage, e + 1, state["epoch"],
                             time.perf_counter() - t0)
            if validate is not None and rank == 0:
                row |= validate(model, row)
            state["history"] = [*state["history"], row]
            _report(row, model, opt, cfg, state, rank)
            if hook is not None:
                hook(row, rank)
        del net
    model.cfg = model_cfg


# ----------------------------------------------------------------------------- driver


def _progress_callback():
    """A Ray Train callback printing one line per epoch (it runs in the Train controller;
    Ray forwards its output to the driver)."""
    import ray.train

    class EpochProgress(ray.train.UserCallback):
        def after_report(self, run_context, metrics, checkpoint) -> None:
            r = metrics[0] if metrics else {}
            if "epoch" in r:
                _worker_log().info("epoch %3d  stage %-20s (%d)  loss %.4f  %.1f s  %d steps",
                                   r["epoch"], r["stage"], r["stage_epoch"], r["loss"],
                                   r["seconds"], r["steps"])

    return EpochProgress()


def _check_out(out: Path, cfg: TrainConfig, source) -> None:
    """Refuse a run folder of other settings or inputs; record this run's
    (:mod:`raysys.training.resume`)."""
    from raysys.training.resume import check_run_folder, train_record

    check_run_folder(out, train_record(cfg, source), write=True)


def _check_cpus(res: Resources) -> None:
    """Fail fast instead of hanging: workers + one clip decoder must fit the cluster."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 0.0))
    need = res.workers * res.cpus_per_worker + res.loader_cpus
    if total and need > total + 1e-9:
        raise ValueError(f"{res.workers} workers x {res.cpus_per_worker} CPUs + "
                         f"{res.loader_cpus} CPU for the clip decoder need {need:g} CPUs; the "
                         f"cluster has {total:g}: lower --cpus-per-worker (fractions work, "
                         "e.g. 0.5) or --workers")


def run_training(source, out: str | os.PathLike, cfg: TrainConfig | None = None,
                 resources: Resources | None = None, *,
                 after_epoch: Callable | None = None, progress: bool = True,
                 validate: Callable | None = None, callbacks: list | None = None,
                 ) -> TrainingResult:
    """Train ViewSAM with Ray Train. Ray must be initialised (:func:`raysys.runtime.init_ray`;
    for weak supervision with the guard's ``runtime_env``).

    Args:
        source: a :class:`raysys.training.data.ClipSource` (``open_source(...)``).
        out: output folder; re-running with the same settings and inputs resumes from its
            checkpoints, other settings or inputs are refused (:mod:`raysys.training.resume`).
        cfg: training config (default ``TrainConfig()``, the paper's schedule).
        resources: workers, CPUs / GPU per worker, clip loaders (the training fields of
            :class:`raysys.runtime.Resources`).
        after_epoch: hook ``(row, rank)`` run in every worker after each epoch's report.
        progress: print one line per epoch.
        validate: ``(model, row) -> dict`` run on rank 0 after each epoch (:func:`train_loop`).
        callbacks: more Ray Train callbacks (Tune's ``TuneReportCallback``).
    """
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raysys.training.data import ClipSpec, plan_samples
    from raysys.training.labels import stage_datasets
    from raysys.viewsam.base import sam2_image_size, sam2_yaml_text

    cfg = cfg or TrainConfig()
    res = resources or Resources()
    _check_cpus(res)
    if cfg.supervision != source.supervision:
        raise ValueError(f"config says supervision={cfg.supervision!r} but the source is "
                         f"{source.supervision!r}")
    out = storage.path(out).resolve()  # a local folder or a storage URI
    yaml_text = sam2_yaml_text(cfg.sam2_config, cfg.sam2_image_size)
    spec = ClipSpec.from_config(cfg, cfg.image_size or sam2_image_size(yaml_text))
    # the clips beyond max_samples calibrate the tracker's thresholds after training: on its
    # own training clips a model's referring scores are over-confident (a threshold of 0.94
    # there against 0.59 on held-out clips of the same run, in the quick demo)
    everything = plan_samples(source, spec, None, cfg.seed)
    samples = everything[:cfg.max_samples]
    held = everything[len(samples):]
    if cfg.batch_size > 1 and len({len(s["views"]) for s in samples}) > 1:
        raise ValueError("scenes have different view counts: batch_size > 1 needs the same V "
                         "in every clip; set max_views or batch_size=1")
    if len(samples) < res.workers:
        raise ValueError(f"{len(samples)} training clips for {res.workers} workers: use fewer "
                         "workers or more data")
    _check_out(out, cfg, source)
    from raysys.training.resume import done_slot

    datasets, per_labels = stage_datasets(cfg, samples, source, spec, res,
                                          done=done_slot(out, cfg))
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"config": to_dict(cfg), "sam2_yaml": yaml_text,
                           "threads": max(1, int(res.cpus_per_worker)),
                           "after_epoch": after_epoch, "validate": validate},
        scaling_config=ScalingConfig(num_workers=res.workers, use_gpu=res.use_gpu,
                                     resources_per_worker={"CPU": res.cpus_per_worker}),
        run_config=RunConfig(
            name=RUN_NAME, **storage.ray_storage(out),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=max(1, cfg.keep_checkpoints)),
            callbacks=([_progress_callback()] if progress else []) + list(callbacks or [])),
        datasets=datasets,
        # each worker reads its own dataset, in order (reproducible runs)
        dataset_config=DataConfig(datasets_to_split=[],
                                  execution_options=ExecutionOptions(preserve_order=True)))
    t0 = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - t0
    if result.checkpoint is None:
        raise RuntimeError(f"training finished without a checkpoint ({result.error})")
    from raysys.training.finish import finish_run

    return finish_run(out, result.checkpoint, samples, spec, res, seconds, source,
                      calibration_samples=held, per_labels=per_labels)
