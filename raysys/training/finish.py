"""The outputs of a training run, made from its last checkpoint: ``final/`` (thresholds
calibrated on held-out clips, :mod:`raysys.training.calibrate`), ``metrics.json`` and
``loss_curves.png``, written to the run's folder, local or a storage URI
(:mod:`raysys.io.storage`). Calibration runs the model, so it runs as a Ray task with a
training worker's resources, never in the driver (on a cluster, the CPU head)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from raysys.io import storage
from raysys.io.jsonio import write_json_file
from raysys.runtime import Resources
from raysys.training.config import TrainConfig
from raysys.training.trainer import TRAIN_RESOURCES, TrainingResult, read_ray_checkpoint

__all__ = ["finish_run", "write_outputs"]


def finish_run(out, checkpoint, samples, spec, res: Resources, seconds, source, **kw):
    """:func:`write_outputs` as a Ray task with a worker's resources (calibration runs the
    model: on a cluster the driver is the CPU head), reading the checkpoint from storage.
    Called from a worker already (a Ray Tune trial, which holds its node's resources), it
    runs there, and calibrates there in one part; from the driver, calibration scores its
    clips in up to ``res.workers`` parts, Ray tasks of a worker's CPUs each (the training
    workers' resources are free again), at least ``MIN_PART_CLIPS`` clips a part,
    :func:`raysys.training.calibrate.calibrate_payload`."""
    import ray

    if ray.get_runtime_context().worker.mode != ray.SCRIPT_MODE:
        return write_outputs(out, checkpoint, samples, spec, res, seconds, source, **kw)
    task = ray.remote(write_outputs).options(
        num_cpus=res.cpus_per_worker, num_gpus=1 if res.use_gpu else 0, max_retries=2)
    return ray.get(task.remote(out, checkpoint, samples, spec, res, seconds, source,
                               calibration_parts=res.workers, **kw))


def write_outputs(out: Path, checkpoint, samples, spec, res, seconds, source=None,
                   calibration_samples: list | None = None,
                   per_labels: dict | None = None,
                   calibration_parts: int = 1) -> TrainingResult:
    """``final/``, ``metrics.json`` and ``loss_curves.png`` from the last checkpoint;
    thresholds calibrated on ``calibration_samples`` (clips left out of training), else on
    the training ``samples``, scored in ``calibration_parts`` Ray tasks of
    ``res.cpus_per_worker`` CPUs each (1: here)."""
    from dataclasses import asdict

    from raysys.training.curves import plot_loss_curves
    from raysys.viewsam.checkpoint import write_checkpoint

    payload = read_ray_checkpoint(checkpoint)
    payload.pop("optimizer", None)
    if source is not None and "calibration" not in payload:
        from raysys.training.calibrate import calibrate_payload

        payload["calibration"] = calibrate_payload(
            payload, source, spec, calibration_samples or samples,
            clips=payload["config"].get("calibration_clips", TrainConfig.calibration_clips),
            held_out=bool(calibration_samples),
            level=payload["config"].get("calibration_level", TrainConfig.calibration_level),
            parts=calibration_parts, cpus=res.cpus_per_worker)
    final = out / "final"
    if isinstance(out, storage.RemotePath):
        with tempfile.TemporaryDirectory() as tmp:
            storage.upload(write_checkpoint(Path(tmp) / "final", payload), final)
    else:
        write_checkpoint(final, payload)
    history = payload["history"]
    metrics = {"history": history, "samples": len(samples),
               "samples_per_labels": per_labels, "clip": asdict(spec),
               "calibration": payload.get("calibration"),
               "resources": {k: getattr(res, k) for k in TRAIN_RESOURCES},
               "fit_seconds": round(seconds, 2),
               "config": payload["config"]}
    write_json_file(out / "metrics.json", metrics, indent=2)
    plot_loss_curves(history, out / "loss_curves.png")
    return TrainingResult(out=out, final=final, history=history, samples=len(samples),
                          seconds=seconds)
