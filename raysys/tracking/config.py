"""Settings of the online ViewSAM tracker (:class:`raysys.tracking.ViewSAMTracker`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrackConfig"]


@dataclass(frozen=True)
class TrackConfig:
    clip_frames: int = 8  # T: synchronised frame sets encoded together (no look-ahead beyond)
    refer_threshold: float | None = None  # min sigmoid(referring logit) of a proposal to
    #   open a track; None: the checkpoint's calibration (raysys.training.calibrate), else 0.5
    objectness_threshold: float | None = None  # min CG objectness to open a track; None:
    #   the checkpoint's calibration, else 0.1
    track_iou: float = 0.3  # min IoU of a proposal with a track's last box to re-prompt it
    new_track_iou: float = 0.3  # a proposal overlapping a live track this much opens nothing
    duplicate_iou: float = 0.7  # two live tracks of a view this similar: the younger ends
    max_tracks: int = 8  # live tracks per view (bounded state)
    max_lost: int = 8  # frames a track may be absent (object score < 0) before it ends
    min_refer: float | None = None  # a track is output while its mean referring probability
    #   is >= this; None: the refer threshold in use
    id_threshold: float = 0.5  # min cosine of a new track's CGCT embedding to an identity
    id_momentum: float = 0.8  # EMA of identity prototypes over clips
    reassign_ids: bool = True  # every present track's id decided again at each clip's end
    #   (False: only new tracks get one, kept for good)
    keep_bonus: float = 0.1  # reassign_ids: added to a track's cosine with the id it holds
    max_identities: int = 256  # identities kept for re-identification (least recent dropped)
    memory_frames: int | None = None  # per-track memory frames kept; None = what SAM2 reads
    #                                  (max(num_maskmem, max_obj_ptrs_in_encoder))
    keep_masks: bool = True  # return full-resolution masks (else boxes only)
    batch_objects: int | None = None  # tracks per SAM2 call (memory attention, decoders,
    #   memory encoder); None: 256 on a GPU; on a CPU 2**19 / S^2 for the model's input
    #   side S (32 at 128 px, 8 at 256 px, 1 at 1024 px): larger batches leave the caches
    #   and run slower per object there. Speed only: not recorded, never blocks a resume

    def __post_init__(self) -> None:
        if self.clip_frames < 1:
            raise ValueError(f"clip_frames must be >= 1, got {self.clip_frames}")
        for name in ("refer_threshold", "objectness_threshold", "track_iou", "new_track_iou",
                     "duplicate_iou", "min_refer", "id_momentum", "keep_bonus"):
            val = getattr(self, name)
            if val is not None and not 0.0 <= val <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {val}")
        if self.batch_objects is not None and self.batch_objects < 1:
            raise ValueError(f"batch_objects must be >= 1 or None, got {self.batch_objects}")
        for name in ("max_tracks", "max_identities"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_lost < 0:
            raise ValueError(f"max_lost must be >= 0, got {self.max_lost}")
        if self.memory_frames is not None and self.memory_frames < 1:
            raise ValueError(f"memory_frames must be >= 1 or None, got {self.memory_frames}")


def decision_thresholds(cfg: TrackConfig, calibration: dict | None) -> tuple[float, float, float]:
    """The tracker's ``(refer, objectness, min_refer)`` thresholds: ``cfg``'s where set, else
    the checkpoint's ``calibration`` (:mod:`raysys.training.calibrate`), else 0.5 / 0.1;
    ``min_refer`` defaults to the refer threshold in use."""
    calib = calibration or {}
    refer = cfg.refer_threshold if cfg.refer_threshold is not None else \
        float(calib.get("refer_threshold", 0.5))
    obj = cfg.objectness_threshold if cfg.objectness_threshold is not None else \
        float(calib.get("objectness_threshold", 0.1))
    return refer, obj, (cfg.min_refer if cfg.min_refer is not None else refer)
