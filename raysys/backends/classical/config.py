"""Settings of the classical concept tracker."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ClassicalTrackerConfig"]


@dataclass(frozen=True)
class ClassicalTrackerConfig:
    """Settings of the classical tracker (defaults fit the generated benchmark)."""

    # background model
    bg_samples: int = 64  # frames sampled for the per-pixel background estimate
    bg_mode_frac: float = 0.25  # background = densest this fraction of samples (shorth mode)
    bg_inlier_tol: float = 36.0  # samples this close (sum |RGB diff|) to the mode are averaged
    ghost_repair: bool = True  # a second stable appearance of a pixel may be the background
    ghost_min_frac: float = 0.15  # ... if held by this fraction of the samples
    ghost_spread: float = 12.0  # ... within this brightness range
    ghost_edge_ratio: float = 0.8  # ... and its region's border edges drop below this ratio
    # foreground
    fg_sigma: float = 5.0  # foreground threshold in robust noise sigmas
    fg_min_threshold: float = 28.0  # ... but at least this colour difference (0-255 x 3)
    shadow_suppression: bool = True  # drop cast shadows from the foreground
    shadow_ratio: tuple[float, float] = (0.45, 0.97)  # shadow brightness / background
    shadow_chroma: float = 0.03  # max chromaticity distortion of a shadow pixel
    shadow_texture: float | None = 0.0  # if set, a shadow on textured ground keeps its
    # texture: min normalised cross-correlation with the background (None: no check)
    min_area_frac: float = 2.5e-4  # smallest blob, as a fraction of the image area
    # perspective size model (person height = a * foot_y + b, learned from the video)
    size_frames: int = 40  # frames whose blobs are used to fit the size model
    size_min_blobs: int = 12  # isolated upright blobs needed to fit the size model
    size_aspect: tuple[float, float] = (1.8, 3.8)  # height / width of blobs used for the fit
    size_tol: float = 0.12  # relative height residual of an inlier blob
    size_band_cap: int = 6  # inliers counted per band of foot rows (1/20 of the image)
    size_refits: int = 1  # refits of the line on the inliers of the previous fit
    size_max_ratio: float = 2.5  # blobs this much taller than the line says count against it
    person_width: float = 0.3  # person box width / height of the detection window
    # detector (greedy matched filter on the foreground; see detect.py)
    det_beta: float = 0.3  # window score = (foreground - beta * area) / expected area
    det_min_score: float = 0.1  # weakest accepted person window
    det_explain: float = 0.3  # weight left on pixels of an accepted window
    det_reach: tuple[float, float, float] = (0.35, 0.35, 0.35)  # pixels at most this far
    # (person heights) above / beside / below a window join it (bags, bicycles)
    det_hidden: float = 0.15  # a window hidden this much by nearer people: box to its feet
    det_cut: float = 0.7  # boxes shorter than this x the person height at their bottom row
    # are people cut by an occluder: completed downwards from the size model
    det_max_people: int = 40  # per frame
    person_detector: str | None = "embedded"  # who finds people: a small learned detector
    # ("embedded": the weights the package ships, pre-trained on generated scenes of their
    # own seeds; or a .pt path from `raysys pretrain-detector`), see person_net.py; None:
    # the matched filter above (no weights at all). Vehicles stay with the shape rule.
    person_det_threshold: float = 0.4  # its heat-map peak score of an accepted person
    person_det_car_iou: float = 0.5  # person boxes overlapping a vehicle this much are dropped
    person_det_batch: int = 16  # frames per detector forward pass
    car_window: tuple[float, float] = (0.6, 0.9)  # vehicle window (height, width) in person
    # heights at its bottom row
    car_min_fill: float = 0.8  # a vehicle fills its window at least this much
    car_min_width: float = 1.0  # ... and is at least this wide (person heights at its
    # bottom row) unless the image border cuts it: people side by side are narrower
    # shape rule when no size model could be fitted
    person_min_aspect: float = 1.05  # height / width of a person blob
    person_max_aspect: float = 5.0
    # association
    iou_match: float = 0.2  # gate: IoU with the prediction at least this ...
    gate_dist: float = 0.6  # ... or feet at most this many box heights from the prediction
    app_weight: float = 3.0  # cost = 1 - IoU + app_weight * colour distance + ...
    dist_weight: float = 0.5  # ... dist_weight * foot distance / box height
    app_gate: float = 0.4  # colour histograms farther apart than this never match
    app_parts: int = 2  # colour histograms of this many horizontal bands (upper/lower body)
    app_bins: int = 6  # histogram bins per RGB channel
    app_smooth: float = 0.8  # track histogram: running mean keeping this much of the past
    vel_smooth: float = 0.6  # foot velocity: running mean keeping this much of the past
    max_age: int = 20  # frames a track may coast without detections before it ends
    stitch_gap: int = 20  # tracks that end and start at most this many frames apart ...
    stitch_dist: float = 0.8  # ... with feet this close (box heights, after extrapolation)
    stitch_app: float = 0.45  # ... and colours this close are joined
    max_gap: int = 25  # gaps up to this many frames are filled by interpolation
    min_det_frac: float = 0.5  # tracks detected in fewer of the frames they span are dropped
    max_aspect: float = 4.0  # person tracks with a taller median height / width are dropped
    min_hits: int = 3  # detections before a track is reported
    min_length: int = 8  # shortest reported tracklet (detected frames)
    reprop_max_miss: int = 8  # re-propagation stops after this many frames without a match
    reprop_extend: bool = True  # past the end of the seed's track, follow single-handedly
    reprop_coast_fill: float = 0.3  # ... meanwhile it keeps the predicted box if this full
    cache_videos: int = 8  # per-video models kept (one scene's views)
    # known categories; parked bicycles are background and ridden ones are people, so
    # "bicycle" objects come only from the shape rule (no size model)
    categories: tuple[str, ...] = field(default=("person", "car", "bicycle"))
