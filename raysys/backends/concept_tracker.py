"""Concept trackers: category prompt -> single-view tracklets; mask prompt -> re-propagation.

Protocol (paper §3.2, the role SAM3 plays):
* ``track(video, category) -> list[Tracklet]``: every object of ``category`` in one view;
* ``repropagate(video, seed_frame, seed_mask, direction, category) -> Tracklet``: follow
  one object from a mask prompt forward or backward in time.

Backends: ``"classical"`` (default; no weights from the user; static cameras) and ``"sam3"``
(:mod:`raysys.backends.sam3_tracker`, GPU, local checkpoint).

The classical tracker (:mod:`raysys.backends.classical`) reads only the frames:

1. background: a per-pixel mode over sampled frames (the median fails where people pass
   or stand for half the video), where a second stable appearance continues the
   surroundings without an edge it replaces an object that stood still (ghost repair);
   foreground = colour difference above a noise-adaptive threshold after exposure
   compensation, minus cast shadows (brightness/chromaticity/texture), morphology;
2. a perspective size model learned from the video: person height linear in the foot row,
   RANSAC over upright blobs (support capped per band of rows so one object seen in many
   frames cannot outvote the rest; lines under which blobs would be giants are penalised);
3. detection per frame: vehicles by a filled vehicle-sized window; people by the small
   CNN the package ships (``person_detector="embedded"``, pre-trained on generated scenes
   of its own seeds, :mod:`~raysys.backends.classical.person_net`), each taking
   the foreground inside its box nearest first; or, with ``person_detector=None``, by a
   greedy matched filter of person-sized windows that splits merged blobs, pixels then
   going to the nearest window, boxes of people partly behind a nearer one reaching to
   their feet;
4. association: constant-velocity foot prediction, cost = 1 - IoU + colour (upper/lower
   body RGB histograms) + foot distance, Hungarian with gates, coasting through misses;
   offline: stitching of fragments, interpolation of short gaps, dropping short, sparse or
   sliver tracks;
5. re-propagation: the track that holds the seed mask, continued past its end by a
   single-object follower (gated detections, then the predicted box while it stays on
   foreground); a seed no track holds is followed from the start.

Per-video models are cached (keyed by content, so two ``VideoFrames`` of one folder share
them): ``track`` of another category or ``repropagate`` on a tracked view is cheap.
"""

from __future__ import annotations

from typing import Literal, Protocol

from raysys.backends.classical.config import ClassicalTrackerConfig
from raysys.backends.classical.tracker import ClassicalConceptTracker
from raysys.io.video import VideoFrames
from raysys.types import MaskRLE, Tracklet

__all__ = [
    "ConceptTracker",
    "ClassicalTrackerConfig",
    "ClassicalConceptTracker",
    "TRACKER_BACKENDS",
]

Direction = Literal["forward", "backward"]


class ConceptTracker(Protocol):
    def track(self, video: VideoFrames, category: str) -> list[Tracklet]: ...

    def repropagate(self, video: VideoFrames, seed_frame: int, seed_mask: MaskRLE,
                    direction: Direction, category: str) -> Tracklet: ...


def _build_sam3(device: str = "cpu", **kwargs):
    from raysys.backends.sam3_tracker import Sam3ConceptTracker

    return Sam3ConceptTracker(device=device, **kwargs)


def _build_classical(device: str = "cpu", **kwargs):
    # YAML gives lists where the config has tuples
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return ClassicalConceptTracker(ClassicalTrackerConfig(**kwargs))


def _registry():
    from raysys.backends.registry import Registry

    reg: Registry[ConceptTracker] = Registry("concept tracker backend")
    reg.register("classical", _build_classical)
    reg.register("sam3", _build_sam3)
    return reg


TRACKER_BACKENDS = _registry()
