"""Tracking a split as a job: join (or start) Ray, then :func:`track_split`.

``raysys track`` runs it, and so does the report's ``track_*`` steps, each in a process of
its own (:func:`raysys.runtime.isolated_argv`).
"""

from __future__ import annotations

import os

from raysys.io.dataset import DatasetLayout
from raysys.runtime import Resources, connect
from raysys.tracking.config import TrackConfig
from raysys.tracking.run import TrackRunResult, track_split

__all__ = ["track_job"]


def track_job(checkpoint: str | os.PathLike, layout: DatasetLayout,
              out: str | os.PathLike, cfg: TrackConfig, resources: Resources,
              progress: bool = True) -> TrackRunResult:
    """Track every expression of ``layout`` with a ViewSAM checkpoint into ``out``, on
    ``resources.track_actors`` actors of ``resources.track_actor_cpus`` CPUs each."""
    connect(resources)
    return track_split(checkpoint, layout, out, cfg, actors=resources.track_actors,
                       actor_cpus=resources.track_actor_cpus, use_gpu=resources.use_gpu,
                       progress=progress)
