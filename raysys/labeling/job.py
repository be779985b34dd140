"""Stage 1 as a job of its own process: the GT guard, Ray, then :func:`run_labeling`.

``raysys label`` runs it, and so does the report's ``label`` step, in a fresh process
(:func:`raysys.runtime.isolated_argv`): the guard is an audit hook that cannot be removed,
so it must never be installed in a driver that reads GT to score.
"""

from __future__ import annotations

import os

from raysys import guard
from raysys.io.dataset import DatasetLayout
from raysys.labeling.config import LabelConfig
from raysys.labeling.pipeline import LabelingResult, run_labeling
from raysys.runtime import Resources, connect

__all__ = ["label_job"]


def label_job(layout: DatasetLayout, out: str | os.PathLike, cfg: LabelConfig,
              resources: Resources) -> LabelingResult:
    """Weakly supervised Stage 1 of one split, with the GT guard enforced.

    This process and every Ray worker of the job refuse to open files under the split's GT
    folders (:mod:`raysys.guard`); then Ray is joined (``resources.address``) or started,
    and :func:`raysys.labeling.pipeline.run_labeling` makes the pseudo labels in ``out``.
    Call it in a process dedicated to labeling: the guard stays installed.
    """
    forbidden = layout.ground_truth_dirs()
    guard.install(forbidden)
    connect(resources, runtime_env=guard.runtime_env(forbidden))
    return run_labeling(layout, out, cfg, resources=resources)
