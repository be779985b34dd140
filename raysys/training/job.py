"""Training as a job of its own process: the clip source, the GT guard (weak
supervision), Ray, then :func:`run_training`.

``raysys train`` runs it, and so do the report's ``train_*`` steps, each in a fresh process
(:func:`raysys.runtime.isolated_argv`): the guard is an audit hook that cannot be removed,
so it must never be installed in a driver that reads GT to score.
"""

from __future__ import annotations

import os

from raysys import guard
from raysys.errors import UserError, require_out_folder
from raysys.io import storage
from raysys.io.frames import check_frames, worker_frame_errors
from raysys.runtime import Resources, connect
from raysys.training.config import TrainConfig
from raysys.training.trainer import TrainingResult, run_training

__all__ = ["train_job"]


def train_job(out: str | os.PathLike, cfg: TrainConfig, resources: Resources, *,
              labels: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
              domain: str | None = None, split: str | None = None) -> TrainingResult:
    """Train ViewSAM into ``out`` (resumable).

    Args:
        cfg: the whole training config; ``cfg.supervision`` says what it learns from.
        resources: Ray, workers and CPUs per worker, clip loaders.
        labels: Stage 1 output (required for weak supervision); its ``config.json`` names
            the dataset, domain and split, and the labels must match them as they are now
            (:func:`raysys.labeling.record.check_labels_match`).
        data, domain, split: the dataset (required for full supervision without labels),
            or overrides of the labels' own.

    With weak supervision this process and every Ray worker refuse to open the split's GT
    (:mod:`raysys.guard`); call it in a process dedicated to training.
    """
    from raysys.training.resume import check_run_folder, train_record
    from raysys.training.sources import open_source

    if cfg.supervision == "weak" and labels is None:
        raise UserError("--labels DIR is required (a `raysys label` output); "
                        "or --supervision full --data DIR")
    require_out_folder(out)
    if labels is not None and not storage.path(labels).is_dir():
        raise FileNotFoundError(f"--labels {labels} is not a folder: pass the --out "
                                "folder of `raysys label`")
    source = open_source(cfg.supervision, labels, data, domain, split)
    # a run folder of other settings or inputs: one line, before Ray starts, nothing written
    check_run_folder(out, train_record(cfg, source), write=False)
    check_frames(source.layout.image_root)  # a corrupt frame: one line, before Ray starts
    env = None
    if cfg.supervision == "weak":
        forbidden = source.layout.ground_truth_dirs()
        guard.install(forbidden)
        env = guard.runtime_env(forbidden)
    connect(resources, runtime_env=env)
    import ray

    # one line per epoch comes from the trainer; Ray Data's bars would bury it
    ray.data.DataContext.get_current().enable_progress_bars = False
    with worker_frame_errors():  # a clip loader's, behind Ray Train's wrapper
        return run_training(source, out, cfg, resources)
