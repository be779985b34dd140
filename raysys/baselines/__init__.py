"""Zero-shot baselines of the paper's Table 1 ("SAM3" and "SAM2" rows).

* :mod:`raysys.baselines.zero_shot_concept`: the concept tracker prompted with the
  expression's category, ReID clustering across views; no language beyond the category.
* :mod:`raysys.baselines.zero_shot_sam2`: concept-tracker boxes filtered by the text (via
  descriptions and a text embedder), then SAM2 video propagation of each kept box.
* :mod:`raysys.baselines.sam2_video`: a small wrapper around SAM2's video predictor.

Imports are cheap: torch and the models load inside the functions that need them.
"""

from raysys.baselines.clustering import cluster_tracklets
from raysys.baselines.sam2_video import Sam2VideoTracker, VideoTracks
from raysys.baselines.zero_shot_concept import (
    TrackletSource,
    expression_category,
    run_zero_shot_concept,
)
from raysys.baselines.zero_shot_sam2 import Sam2Spec, TextFilterConfig, run_zero_shot_sam2

__all__ = ["Sam2Spec", "Sam2VideoTracker", "TextFilterConfig", "TrackletSource", "VideoTracks",
           "cluster_tracklets", "expression_category", "run_zero_shot_concept",
           "run_zero_shot_sam2"]
