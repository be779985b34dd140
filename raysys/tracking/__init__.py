"""Cross-view referring tracking with a trained ViewSAM: the online tracker object and the
offline runner that writes CRTrack predictions."""

from raysys.tracking.config import TrackConfig
from raysys.tracking.identity import IdentityBank
from raysys.tracking.tracker import (
    FrameResult,
    MultiExpressionTracker,
    TrackedObject,
    ViewSAMTracker,
)

__all__ = ["TrackConfig", "IdentityBank", "ViewSAMTracker", "MultiExpressionTracker",
           "FrameResult", "TrackedObject"]
