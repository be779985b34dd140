"""Concept trackers: category prompt -> single-view tracklets; mask prompt -> re-propagation.

Protocol (paper §3.2, the role SAM3 plays):
* ``track(video, category) -> list[Tracklet]``: every object of ``category`` in one view;
* ``repropagate(video, seed_frame, seed_mask, direction, category) -> Tracklet``: follow
  one object from a mask prompt forward or backward in time.

Backends: ``"classical"`` (default, no weights; static cameras) and ``"sam3"``
(:mod:`raysys.labeling.backends.sam3_tracker`, GPU, local checkpoint).

The classical tracker (:mod:`raysys.labeling.backends.classical`) reads only the frames:

1. background: a per-pixel mode over sampled frames (robust to people who stand still
   for a good part of the video), foreground = colour difference above a noise-adaptive
   threshold after exposure compensation, minus cast shadows, cleaned by morphology;
2. a perspective size model learned from the video (person height linear in the foot row,
   RANSAC over isolated upright blobs);
3. detection: vehicles by a filled vehicle-sized window, people by a greedy matched
   filter of person-sized windows that splits merged blobs; boxes of people whose lower
   body is hidden are completed from the size model;
4. association: constant-velocity prediction, cost = IoU + colour histogram + foot
   distance (Hungarian), coasting through misses; offline stitching of track fragments
   and interpolation of gaps;
5. re-propagation: the track holding the seed, continued past its end by a single-object
   follower (detections, then the predicted box while it stays on foreground).
"""

from __future__ import annotations

from typing import Literal, Protocol

from raysys.io.video import VideoFrames
from raysys.labeling.backends.classical.config import ClassicalTrackerConfig
from raysys.labeling.backends.classical.tracker import ClassicalConceptTracker
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
    from raysys.labeling.backends.sam3_tracker import Sam3ConceptTracker

    return Sam3ConceptTracker(device=device, **kwargs)


def _build_classical(device: str = "cpu", **kwargs):
    # YAML gives lists where the config has tuples
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return ClassicalConceptTracker(ClassicalTrackerConfig(**kwargs))


def _registry():
    from raysys.labeling.backends.registry import Registry

    reg: Registry[ConceptTracker] = Registry("concept tracker backend")
    reg.register("classical", _build_classical)
    reg.register("sam3", _build_sam3)
    return reg


TRACKER_BACKENDS = _registry()
