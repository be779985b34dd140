"""Concept trackers: category prompt -> single-view tracklets; mask prompt -> re-propagation.

Protocol (paper §3.2, the role SAM3 plays):
* ``track(video, category) -> list[Tracklet]``: every object of ``category`` in one view;
* ``repropagate(video, seed_frame, seed_mask, direction, category) -> Tracklet``: follow
  one object from a mask prompt forward or backward in time.

Backends: ``"classical"`` (default, no weights; static cameras) and ``"sam3"``
(:mod:`raysys.labeling.backends.sam3_tracker`, GPU, local checkpoint).

The classical tracker: a per-pixel median background over sampled frames, foreground =
colour difference above a noise-adaptive threshold, morphology, connected components,
a shape rule for the category, and frame-to-frame association by IoU of constant-velocity
predictions (Hungarian). Re-propagation follows one seeded object through foreground
blobs, keeping its size when it merges with others (occlusion) and stopping when lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

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


@dataclass(frozen=True)
class ClassicalTrackerConfig:
    """Settings of the classical tracker (defaults fit the generated benchmark)."""

    bg_samples: int = 48  # frames sampled for the median background
    fg_sigma: float = 5.0  # foreground threshold in robust noise sigmas
    fg_min_threshold: float = 28.0  # ... but at least this colour difference (0-255 x 3)
    shadow_suppression: bool = True  # drop cast shadows from the foreground
    shadow_ratio: tuple[float, float] = (0.3, 0.97)  # shadow brightness / background
    shadow_chroma: float = 0.08  # max chromaticity distortion of a shadow pixel
    shadow_texture: float = 0.6  # min local correlation with the background texture
    min_area_frac: float = 2.5e-4  # smallest blob, as a fraction of the image area
    person_min_aspect: float = 1.05  # height / width of a person blob
    person_max_aspect: float = 5.0
    iou_match: float = 0.25  # minimum IoU between a prediction and a detection
    min_hits: int = 3  # detections before a track is reported
    max_age: int = 4  # frames a track may miss before it ends
    min_length: int = 5  # shortest reported tracklet
    reprop_max_miss: int = 6  # re-propagation stops after this many lost frames
    categories: tuple[str, ...] = field(default=("person", "car", "bicycle"))


def _median_background(video: VideoFrames, n: int) -> np.ndarray:
    idx = np.unique(np.linspace(0, len(video) - 1, min(n, len(video))).round().astype(int))
    stack = np.stack([video[int(i)] for i in idx])  # (S, H, W, 3)
    return np.median(stack, axis=0).astype(np.float32)


class _Foreground:
    """Foreground masks and blobs of one video against its median background."""

    def __init__(self, video: VideoFrames, cfg: ClassicalTrackerConfig):
        import cv2

        self.cv2, self.cfg, self.video = cv2, cfg, video
        self.bg = cv2.GaussianBlur(_median_background(video, cfg.bg_samples), (5, 5), 0)
        self._bg_gray = self.bg.mean(axis=2)
        self._bg_mean = cv2.blur(self._bg_gray, (7, 7))
        self._bg_var = np.maximum(
            cv2.blur(self._bg_gray * self._bg_gray, (7, 7)) - self._bg_mean**2, 0.0)
        h, w = self.bg.shape[:2]
        self.min_area = max(12, int(cfg.min_area_frac * h * w))
        k = max(3, int(round(min(h, w) / 120)) | 1)
        self.k_open = np.ones((3, 3), np.uint8)
        self.k_close = np.ones((k, k), np.uint8)
        self._cache: dict[int, np.ndarray] = {}

    def mask(self, i: int) -> np.ndarray:
        """(H, W) bool foreground of the i-th frame (cached)."""
        if i in self._cache:
            return self._cache[i]
        cv2 = self.cv2
        f = cv2.GaussianBlur(self.video[i].astype(np.float32), (5, 5), 0)
        d = np.abs(f - self.bg).sum(axis=2)
        sigma = 1.4826 * float(np.median(np.abs(d - np.median(d)))) + 1e-6
        thr = max(self.cfg.fg_min_threshold, self.cfg.fg_sigma * sigma)
        m = d > thr
        if self.cfg.shadow_suppression:
            m &= ~self._shadow(f)
        m = m.astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, self.k_open)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, self.k_close)
        out = m.astype(bool)
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[i] = out
        return out

    def _shadow(self, f: np.ndarray) -> np.ndarray:
        """Cast shadows: darker than the background with the same chromaticity
        (Horprasert et al.: brightness ratio alpha, chromaticity distortion)."""
        bg = self.bg
        alpha = (f * bg).sum(axis=2) / np.maximum((bg * bg).sum(axis=2), 1.0)
        dist = np.linalg.norm(f - alpha[..., None] * bg, axis=2)
        dist /= np.maximum(np.linalg.norm(bg, axis=2), 1.0)
        lo, hi = self.cfg.shadow_ratio
        cand = (alpha > lo) & (alpha < hi) & (dist < self.cfg.shadow_chroma)
        # a shadow keeps the ground's texture: local normalised cross-correlation with the
        # background is high; a uniformly coloured coat over textured ground is not
        cv2 = self.cv2
        g, b = f.mean(axis=2), self._bg_gray
        k = (7, 7)
        mg, mb = cv2.blur(g, k), self._bg_mean
        cov = cv2.blur(g * b, k) - mg * mb
        vg = np.maximum(cv2.blur(g * g, k) - mg * mg, 0.0)
        ncc = cov / np.sqrt(np.maximum(vg * self._bg_var, 1e-6))
        textured = self._bg_var > 4.0
        return cand & ((ncc > self.cfg.shadow_texture) | ~textured)

    def blobs(self, i: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """[(box xywh, mask (H, W) bool)] of the connected components of frame i."""
        m = self.mask(i).astype(np.uint8)
        n, labels, stats, _ = self.cv2.connectedComponentsWithStats(m, connectivity=8)
        out = []
        for c in range(1, n):
            x, y, w, h, area = stats[c]
            if area < self.min_area:
                continue
            out.append((np.array([x, y, w, h], float), labels == c))
        return out


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes, (len(a), len(b))."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(a[:, None, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(a[:, None, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


@dataclass
class _Track:
    tid: int
    frames: list[int]
    boxes: list[np.ndarray]
    masks: list[MaskRLE]
    scores: list[float]
    misses: int = 0

    def predict(self) -> np.ndarray:
        b = self.boxes[-1]
        if len(self.boxes) >= 2:
            v = (self.boxes[-1][:2] - self.boxes[-2][:2]) * (1 + self.misses)
            return np.array([b[0] + v[0], b[1] + v[1], b[2], b[3]])
        return b


class ClassicalConceptTracker:
    """Background-subtraction concept tracker for static cameras (no weights)."""

    def __init__(self, cfg: ClassicalTrackerConfig | None = None):
        self.cfg = cfg or ClassicalTrackerConfig()
        self._fg: dict[tuple[str, str, int], _Foreground] = {}

    def _foreground(self, video: VideoFrames) -> _Foreground:
        key = (video.scene, video.view, len(video))
        if key not in self._fg:
            if len(self._fg) >= 8:  # keep the models of a few videos (one scene's views)
                self._fg.pop(next(iter(self._fg)))
            self._fg[key] = _Foreground(video, self.cfg)
        return self._fg[key]

    def category_of(self, box: np.ndarray) -> str:
        """Shape rule: upright blobs are people, wide low blobs vehicles/bicycles."""
        aspect = box[3] / max(box[2], 1.0)
        if self.cfg.person_min_aspect <= aspect <= self.cfg.person_max_aspect:
            return "person"
        return "car" if aspect < 0.8 else "bicycle"

    def _check_category(self, category: str) -> None:
        if category not in self.cfg.categories:
            raise ValueError(f"the classical tracker knows categories {self.cfg.categories}, "
                             f"got {category!r}")

    def track(self, video: VideoFrames, category: str) -> list[Tracklet]:
        """All ``category`` objects of one view as tracklets (1-based frame numbers)."""
        from scipy.optimize import linear_sum_assignment

        self._check_category(category)
        fg = self._foreground(video)
        h, w = fg.bg.shape[:2]
        active: list[_Track] = []
        done: list[_Track] = []
        next_id = 1
        for i in range(len(video)):
            frame_no = int(video.frame_numbers[i])
            dets = [(b, m) for b, m in fg.blobs(i) if self.category_of(b) == category]
            boxes = np.array([b for b, _ in dets]).reshape(-1, 4)
            preds = np.array([t.predict() for t in active]).reshape(-1, 4)
            iou = _iou_matrix(preds, boxes)
            rows, cols = linear_sum_assignment(-iou) if iou.size else ([], [])
            used_t, used_d = set(), set()
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] < self.cfg.iou_match:
                    continue
                t = active[r]
                t.frames.append(frame_no)
                t.boxes.append(boxes[c])
                t.masks.append(MaskRLE.encode(dets[c][1]))
                t.scores.append(float(min(1.0, 0.5 + iou[r, c])))
                t.misses = 0
                used_t.add(r)
                used_d.add(c)
            still = []
            for k, t in enumerate(active):
                if k not in used_t:
                    t.misses += 1
                (still if t.misses <= self.cfg.max_age else done).append(t)
            active = still
            for c in range(len(dets)):
                if c not in used_d:
                    active.append(_Track(next_id, [frame_no], [boxes[c]],
                                         [MaskRLE.encode(dets[c][1])], [0.5]))
                    next_id += 1
        done += active
        out = []
        for t in sorted(done, key=lambda t: t.tid):
            if len(t.frames) < max(self.cfg.min_hits, self.cfg.min_length):
                continue
            out.append(Tracklet(video.scene, video.view, len(out) + 1, category,
                                np.array(t.frames), np.array(t.boxes), np.array(t.scores),
                                tuple(t.masks)))
        del h, w
        return out

    def repropagate(self, video: VideoFrames, seed_frame: int, seed_mask: MaskRLE,
                    direction: Direction, category: str = "person") -> Tracklet:
        """Follow the object of ``seed_mask`` from ``seed_frame`` (included) onwards."""
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        fg = self._foreground(video)
        seed_box = seed_mask.to_box()
        if seed_box is None:
            raise ValueError("seed mask is empty")
        start = video.index_of(seed_frame)
        step = 1 if direction == "forward" else -1
        box = np.array(seed_box.xywh, float)
        frames, boxes, masks, scores = [seed_frame], [box], [seed_mask], [1.0]
        vel, miss = np.zeros(2), 0
        i = start + step
        while 0 <= i < len(video) and miss <= self.cfg.reprop_max_miss:
            pred = box + np.array([vel[0], vel[1], 0, 0]) * (1 + miss)
            found = self._follow(fg, i, pred, box)
            if found is None:
                miss += 1
                i += step
                continue
            nbox, nmask, score = found
            vel = 0.5 * vel + 0.5 * (nbox[:2] - box[:2]) / (1 + miss)
            box, miss = nbox, 0
            frames.append(int(video.frame_numbers[i]))
            boxes.append(nbox)
            masks.append(MaskRLE.encode(nmask))
            scores.append(score)
            i += step
        order = np.argsort(frames)
        return Tracklet(video.scene, video.view, 0, category, np.array(frames)[order],
                        np.array(boxes)[order], np.array(scores)[order],
                        tuple(masks[k] for k in order))

    def _follow(self, fg: _Foreground, i: int, pred: np.ndarray, last: np.ndarray):
        """The seeded object in frame i near ``pred``: (box, mask, score) or None."""
        blobs = fg.blobs(i)
        if not blobs:
            return None
        iou = _iou_matrix(pred[None], np.array([b for b, _ in blobs]))[0]
        k = int(np.argmax(iou))
        if iou[k] < self.cfg.iou_match * 0.5:
            return None
        bbox, bmask = blobs[k]
        if bbox[2] * bbox[3] <= 1.6 * last[2] * last[3]:
            return bbox, bmask, float(min(1.0, 0.5 + iou[k]))
        # merged with other objects (occlusion): keep the last size around the prediction
        x, y, w, h = pred
        H, W = bmask.shape
        x0, y0 = int(max(0, round(x))), int(max(0, round(y)))
        x1, y1 = int(min(W, round(x + w))), int(min(H, round(y + h)))
        if x1 <= x0 or y1 <= y0:
            return None
        m = np.zeros_like(bmask)
        m[y0:y1, x0:x1] = bmask[y0:y1, x0:x1]
        if not m.any():
            return None
        ys, xs = np.nonzero(m)
        nbox = np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1],
                        float)
        return nbox, m, 0.4


def _build_sam3(device: str = "cpu", **kwargs):
    from raysys.labeling.backends.sam3_tracker import Sam3ConceptTracker

    return Sam3ConceptTracker(device=device, **kwargs)


def _build_classical(device: str = "cpu", **kwargs):
    return ClassicalConceptTracker(ClassicalTrackerConfig(**kwargs))


def _registry():
    from raysys.labeling.backends.registry import Registry

    reg: Registry[ConceptTracker] = Registry("concept tracker backend")
    reg.register("classical", _build_classical)
    reg.register("sam3", _build_sam3)
    return reg


TRACKER_BACKENDS = _registry()
