"""A sweep as a job of its own process: the GT guard (weak validation), Ray, then
:func:`raysys.tune.sweep.run_sweep`.

Weak-safe by default: this process and every Ray worker refuse to open the dataset's GT
(:mod:`raysys.guard`); validation reads the pseudo labels of held-out frames. With
``val_gt`` (an oracle sweep, the fully supervised setting) the guard is not installed,
since validation reads GT; training still reads only the pseudo labels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from raysys import guard
from raysys.errors import UserError, require_out_folder
from raysys.runtime import Resources, connect
from raysys.training.config import TrainConfig
from raysys.tune.sweep import SweepConfig, run_sweep

__all__ = ["tune_job"]

log = logging.getLogger(__name__)


def _connect(resources: Resources, env: dict | None) -> None:
    """Ray, for a local one with its dashboard: Ray Train's ``PlacementGroupCleaner`` asks
    the State API (served by the dashboard) whether a trial's train controller is alive,
    and frees its workers' placement group when ASHA kills the trial; without it, every
    trial stopped early would keep its CPUs reserved until Ray shuts down."""
    import ray

    if resources.address or os.environ.get("RAY_ADDRESS") or ray.is_initialized():
        connect(resources, runtime_env=env)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=resources.num_cpus, include_dashboard=True,
             log_to_driver=True, runtime_env=env)  # a new Ray, never a `ray start` one


def tune_job(labels: str | os.PathLike, out: str | os.PathLike, cfg: TrainConfig,
             space: dict, sweep: SweepConfig, resources: Resources, *,
             val_gt: str | os.PathLike | None = None, track=None,
             resume: bool = False) -> dict:
    """Run or resume a sweep into ``out``; see :func:`raysys.tune.sweep.run_sweep`."""
    from raysys.io.dataset import require_out_outside_ground_truth
    from raysys.training.sources import open_source

    if cfg.supervision != "weak":
        raise UserError("raysys tune trains on pseudo labels (supervision weak); "
                        "--val-gt DATA validates on GT (oracle)")
    from raysys.io import storage

    if storage.is_uri(out) or storage.is_uri(labels):
        raise UserError("raysys tune takes local folders only (its validation split is built "
                        "in the driver's folder): pass a local --labels and --out, on one "
                        "machine or on a disk that every node mounts at the same path")
    require_out_folder(out)
    if not Path(labels).is_dir():
        raise FileNotFoundError(f"--labels {labels} is not a folder: pass the --out folder "
                                "of `raysys label`")
    source = open_source("weak", labels)
    require_out_outside_ground_truth(out, source.layout)
    env = None
    if val_gt is None:
        forbidden = source.layout.ground_truth_dirs()
        guard.install(forbidden)
        env = guard.runtime_env(forbidden)
    else:
        log.warning("--val-gt: validation reads GT (an ORACLE sweep); the GT guard is off")
    _connect(resources, env)
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    return run_sweep(labels, out, cfg, space, sweep, resources, val_gt=val_gt, track=track,
                     resume=resume)
