"""Stage 1 as a job of its own process: the GT guard, Ray, then :func:`run_labeling`.

``raysys label`` runs it, and so does the report's ``label`` step, in a fresh process
(:func:`raysys.runtime.isolated_argv`): the guard is an audit hook that cannot be removed,
so it must never be installed in a driver that reads GT to score.
"""

from __future__ import annotations

import os

from raysys import guard
from raysys.backends.names import check_backend_names
from raysys.errors import require_out_folder
from raysys.io.dataset import DatasetLayout
from raysys.io.frames import check_frames, worker_frame_errors
from raysys.labeling.config import LabelConfig
from raysys.labeling.pipeline import LabelingResult, check_labeling_inputs, run_labeling
from raysys.runtime import Resources, connect

__all__ = ["label_job"]


def label_job(layout: DatasetLayout, out: str | os.PathLike, cfg: LabelConfig,
              resources: Resources, *, allow_missing_views: bool = False) -> LabelingResult:
    """Weakly supervised Stage 1 of one split, with the GT guard enforced.

    This process and every Ray worker of the job refuse to open files under the split's GT
    folders (:mod:`raysys.guard`); then Ray is joined (``resources.address``) or started,
    and :func:`raysys.labeling.pipeline.run_labeling` makes the pseudo labels in ``out``.
    Call it in a process dedicated to labeling: the guard stays installed.

    Before anything starts, the backend names are looked up and every frame of the split
    is checked (:func:`raysys.io.frames.check_frames`): a typo or a corrupt frame is one
    line, not a worker's traceback. Should a frame still fail to decode inside a worker,
    its :class:`~raysys.io.frames.FrameError` is raised here (not Ray's wrapper). Also
    checked first, by :func:`~raysys.labeling.pipeline.check_labeling_inputs`: ``out``
    (never inside the dataset's GT; its record of an earlier run) and the scenes' views.
    A failed check writes nothing.
    """
    check_backend_names(tracker=cfg.tracker, reid=cfg.reid, describer=cfg.describer,
                        text=cfg.text, config=True, options={
                            k: getattr(cfg, k) for k in ("tracker_options", "reid_options",
                                                         "describer_options")})
    require_out_folder(out)
    check_labeling_inputs(layout, out, cfg, allow_missing_views=allow_missing_views)
    check_frames(layout.image_root)
    forbidden = layout.ground_truth_dirs()
    guard.install(forbidden)
    connect(resources, runtime_env=guard.runtime_env(forbidden))
    with worker_frame_errors():  # a worker's FrameError, behind Ray's wrapper
        return run_labeling(layout, out, cfg, resources=resources,
                            allow_missing_views=allow_missing_views)
