"""The zero-shot baselines as a job of its own process: the GT guard, then the baseline.

``raysys baseline`` runs it, and so do the report's ``baseline_*`` steps, each in a fresh
process (:func:`raysys.runtime.isolated_argv`). The baselines are zero-shot: they see
frames, category labels and the expression folder *names* only, so the guard is installed
before any work and a baseline that opened a GT file would fail instead of scoring well.
They run in the process (no Ray).
"""

from __future__ import annotations

import os
from pathlib import Path

from raysys import guard
from raysys.backends.names import check_backend_names
from raysys.errors import require_out_folder
from raysys.io.dataset import DatasetLayout, require_out_outside_ground_truth
from raysys.io.frames import check_frames

__all__ = ["BASELINE_METHODS", "baseline_job"]

BASELINE_METHODS = ("concept", "sam2", "filtered")  # Table 1 rows "SAM3" and "SAM2"; and
#   "filtered": the SAM2 row's text filter on the concept tracker's boxes, no SAM2 (not a
#   row of the paper; a zero-shot referring reference)


def baseline_job(method: str, layout: DatasetLayout, out: str | os.PathLike, *,
                 summary_json: str | os.PathLike | None = None, **options) -> dict:
    """Predict every expression of ``layout`` with a zero-shot baseline into ``out``.

    Args:
        method: ``concept`` (:func:`run_zero_shot_concept`), ``sam2``
            (:func:`run_zero_shot_sam2`) or ``filtered`` (the same without SAM2
            propagation: ``propagate=False``).
        summary_json: also write the run summary there as JSON.
        options: keyword arguments of that function (``label_dir``, ``tracker``, ``reid``,
            ``threshold``, ``device``, ``progress``; for ``sam2`` also ``sam2``; for
            ``sam2`` and ``filtered`` also ``describer``, ``text``, ``text_filter``).

    Returns:
        the run summary (expressions, seconds, where the tracklets came from, ...).
    """
    if method not in BASELINE_METHODS:
        raise ValueError(f"unknown baseline {method!r}; valid: {', '.join(BASELINE_METHODS)}")
    # a typo or a corrupt frame is one line before any model loads (see raysys.io.frames)
    check_backend_names(**{k: options.get(k) for k in ("tracker", "reid", "describer",
                                                        "text")})
    require_out_folder(out)
    require_out_outside_ground_truth(out, layout)
    check_frames(layout.image_root)
    guard.install(layout.ground_truth_dirs())
    if method == "concept":
        from raysys.baselines.zero_shot_concept import run_zero_shot_concept

        summary = run_zero_shot_concept(layout, out, **options)
    else:
        from raysys.baselines.zero_shot_sam2 import run_zero_shot_sam2

        summary = run_zero_shot_sam2(layout, out, propagate=method == "sam2", **options)
    if summary_json is not None:
        from raysys.io.jsonio import write_json_file

        write_json_file(Path(summary_json), summary)
    return summary
