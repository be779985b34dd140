"""Core data types of raysys, validated at construction.

The flow (see README, "Data that flows"):
``(scene, view) video -> Tracklet -> CrossViewTrajectory -> Expression``.

Conventions used everywhere:
* frames are 1-based integers per view (CRTrack);
* boxes are ``(left, top, width, height)`` in pixels, float;
* masks are COCO-style *uncompressed* run-length encodings over the column-major
  (Fortran-order) flattened mask, starting with a run of zeros.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Box",
    "MaskRLE",
    "Tracklet",
    "CrossViewTrajectory",
    "Expression",
]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box ``(left, top, width, height)`` in pixels."""

    left: float
    top: float
    width: float
    height: float

    def __post_init__(self) -> None:
        vals = (self.left, self.top, self.width, self.height)
        if not all(math.isfinite(float(v)) for v in vals):
            raise ValueError(f"Box values must be finite, got {vals}")
        if self.width < 0 or self.height < 0:
            raise ValueError(
                f"Box width/height must be >= 0, got width={self.width}, height={self.height}; "
                "pass (left, top, width, height), not (x1, y1, x2, y2) - use Box.from_xyxy"
            )

    @classmethod
    def from_xyxy(cls, x1: float, y1: float, x2: float, y2: float) -> Box:
        return cls(float(x1), float(y1), float(x2) - float(x1), float(y2) - float(y1))

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.left + self.width, self.top + self.height)

    @property
    def xywh(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.width, self.height)

    @property
    def area(self) -> float:
        return self.width * self.height

    def iou(self, other: Box) -> float:
        ax1, ay1, ax2, ay2 = self.xyxy
        bx1, by1, bx2, by2 = other.xyxy
        iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
        ih = max(0.0, min(ay2, by2) - max(ay1, by1))
        inter = iw * ih
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class MaskRLE:
    """A binary mask as an uncompressed COCO run-length encoding.

    ``counts`` alternates runs of 0s and 1s over the column-major flattened mask,
    starting with 0s (a mask starting with a 1 has ``counts[0] == 0``).
    """

    height: int
    width: int
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"MaskRLE size must be positive, got {self.height}x{self.width}")
        if any(c < 0 for c in self.counts):
            raise ValueError("MaskRLE counts must be non-negative")
        total = sum(self.counts)
        if total != self.height * self.width:
            raise ValueError(
                f"MaskRLE counts sum to {total}, expected height*width="
                f"{self.height * self.width}"
            )

    @classmethod
    def encode(cls, mask: np.ndarray) -> MaskRLE:
        """Encode a 2-D boolean (or 0/1) array."""
        m = np.asarray(mask)
        if m.ndim != 2:
            raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
        h, w = m.shape
        flat = m.astype(bool).ravel(order="F")
        # positions where the value changes; runs alternate starting from 0s
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        bounds = np.concatenate(([0], change, [flat.size]))
        runs = np.diff(bounds).tolist()
        if flat.size and flat[0]:
            runs = [0, *runs]
        return cls(int(h), int(w), tuple(int(r) for r in runs))

    def decode(self) -> np.ndarray:
        """Return the (H, W) boolean mask."""
        vals = np.zeros(len(self.counts), dtype=bool)
        vals[1::2] = True
        flat = np.repeat(vals, self.counts)
        return flat.reshape((self.height, self.width), order="F")

    @property
    def area(self) -> int:
        return int(sum(self.counts[1::2]))

    def to_box(self) -> Box | None:
        """Tight box around the mask, or None for an empty mask."""
        m = self.decode()
        ys, xs = np.nonzero(m)
        if ys.size == 0:
            return None
        return Box(float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                   float(ys.max() - ys.min() + 1))

    def to_string(self) -> str:
        """Compact text form ``"HxW:c0 c1 ..."`` for Parquet/JSON columns."""
        return f"{self.height}x{self.width}:" + " ".join(map(str, self.counts))

    @classmethod
    def from_string(cls, s: str) -> MaskRLE:
        try:
            size, counts = s.split(":", 1)
            h, w = (int(v) for v in size.split("x"))
            return cls(h, w, tuple(int(c) for c in counts.split()))
        except ValueError as e:
            raise ValueError(f"not a MaskRLE string ('HxW:c0 c1 ...'): {s[:60]!r}: {e}") from e


@dataclass(frozen=True)
class Tracklet:
    """A single-view track: one object in one camera over a span of frames.

    Args:
        scene: scene name (no ``_``; CRTrack folder names split on the first ``_``).
        view: view name, e.g. ``"View1"``.
        local_id: id unique within (scene, view).
        category: object category, e.g. ``"person"``.
        frames: (n,) strictly increasing 1-based frame indices.
        boxes: (n, 4) ``left, top, width, height``.
        scores: (n,) confidences in [0, 1].
        masks: optional n masks aligned with ``frames``.
    """

    scene: str
    view: str
    local_id: int
    category: str
    frames: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    masks: tuple[MaskRLE, ...] | None = None

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        boxes = np.asarray(self.boxes, dtype=np.float64)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        n = frames.size
        if boxes.shape != (n, 4):
            raise ValueError(f"Tracklet boxes must have shape ({n}, 4), got {boxes.shape}")
        if scores.shape != (n,):
            raise ValueError(f"Tracklet scores must have shape ({n},), got {scores.shape}")
        if n and (frames.min() < 0 or np.any(np.diff(frames) <= 0)):
            raise ValueError("Tracklet frames must be non-negative and strictly increasing")
        if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] < 0):
            raise ValueError("Tracklet boxes must be finite with width, height >= 0")
        if self.masks is not None and len(self.masks) != n:
            raise ValueError(f"Tracklet has {n} frames but {len(self.masks)} masks")
        if "_" in self.scene:
            raise ValueError(f"scene name {self.scene!r} must not contain '_'")
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return int(self.frames.size)


@dataclass(frozen=True)
class CrossViewTrajectory:
    """One object across views: a global id and its per-view tracklets."""

    scene: str
    global_id: int
    category: str
    tracklets: Mapping[str, tuple[Tracklet, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fixed: dict[str, tuple[Tracklet, ...]] = {}
        for view, tls in self.tracklets.items():
            tls = tuple(tls)
            for t in tls:
                if t.view != view or t.scene != self.scene:
                    raise ValueError(
                        f"tracklet ({t.scene}, {t.view}, {t.local_id}) filed under "
                        f"({self.scene}, {view})"
                    )
            frames = np.concatenate([t.frames for t in tls]) if tls else np.zeros(0)
            if frames.size != np.unique(frames).size:
                raise ValueError(
                    f"trajectory {self.global_id} has overlapping tracklets in {view}: "
                    "one object cannot be in two places in one frame"
                )
            fixed[view] = tls
        object.__setattr__(self, "tracklets", fixed)

    @property
    def views(self) -> list[str]:
        return sorted(v for v, t in self.tracklets.items() if t)


@dataclass(frozen=True)
class Expression:
    """A referring expression of a scene and the global ids it refers to."""

    scene: str
    text: str
    global_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.scene or "_" in self.scene or "/" in self.scene:
            raise ValueError(f"scene name {self.scene!r} must be non-empty, without '_' or '/'")
        if not self.text.strip() or "/" in self.text or "\x00" in self.text:
            raise ValueError(f"expression text {self.text!r} must be non-empty, without '/'")
        object.__setattr__(self, "global_ids", tuple(sorted(int(g) for g in self.global_ids)))

    @property
    def folder_name(self) -> str:
        """CRTrack folder name ``<Scene>_<expression>``."""
        return f"{self.scene}_{self.text}"


