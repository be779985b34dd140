"""Tracking a split as a job: join (or start) Ray, then :func:`track_split`.

``raysys track`` runs it, and so does the report's ``track_*`` steps, each in a process of
its own (:func:`raysys.runtime.isolated_argv`).
"""

from __future__ import annotations

import os

from raysys.errors import require_out_folder
from raysys.io import storage
from raysys.io.dataset import DatasetLayout
from raysys.io.frames import check_frames, worker_frame_errors
from raysys.runtime import Resources, connect
from raysys.tracking.config import TrackConfig
from raysys.tracking.run import TrackRunResult, check_track_inputs, track_split

__all__ = ["track_job"]


def track_job(checkpoint: str | os.PathLike, layout: DatasetLayout,
              out: str | os.PathLike, cfg: TrackConfig, resources: Resources,
              progress: bool = True, *, allow_missing_views: bool = False,
              allow_partial: bool = False) -> TrackRunResult:
    """Track every expression of ``layout`` with a ViewSAM checkpoint into ``out``, on
    ``resources.track_actors`` actors of ``resources.track_actor_cpus`` CPUs each.

    Before Ray starts: ``checkpoint`` must hold a model file, and every frame of the split
    is checked (:func:`raysys.io.frames.check_frames`); either is one line naming the path.
    Then, before Ray starts, :func:`~raysys.tracking.run.check_track_inputs` checks ``out``
    (never inside the dataset's GT; its record of another model or other settings) and the
    scenes' views (``allow_missing_views``). A failed check writes nothing. Last, the model
    is built and its weights loaded once
    (:func:`raysys.viewsam.checkpoint.check_viewsam_checkpoint`): weights that do not fit
    are an error naming the keys, unless ``allow_partial``.
    """
    from raysys.viewsam.checkpoint import META_FILE, check_viewsam_checkpoint, is_checkpoint

    ck = storage.path(checkpoint)
    if not is_checkpoint(ck):
        raise FileNotFoundError(f"--model {ck}: not a ViewSAM checkpoint (no {META_FILE} "
                                "in it); pass a `raysys train` run's final/ folder")
    require_out_folder(out)
    check_frames(layout.image_root)
    check_track_inputs(ck, layout, out, cfg, allow_missing_views=allow_missing_views)
    check_viewsam_checkpoint(ck, allow_partial=allow_partial)
    connect(resources)
    with worker_frame_errors():  # an actor's FrameError, not Ray's wrapper
        return track_split(checkpoint, layout, out, cfg, actors=resources.track_actors,
                           actor_cpus=resources.track_actor_cpus, use_gpu=resources.use_gpu,
                           progress=progress, allow_missing_views=allow_missing_views,
                           allow_partial=allow_partial,
                           expressions_per_pass=resources.track_expressions)
