"""The classical concept tracker: detection + association per video, re-propagation."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from raysys.backends.classical.associate import iou_matrix
from raysys.backends.classical.config import ClassicalTrackerConfig
from raysys.backends.classical.follow import follow
from raysys.backends.classical.video_state import VideoState, mask_rle, video_key
from raysys.types import MaskRLE, Tracklet

__all__ = ["ClassicalConceptTracker"]


class ClassicalConceptTracker:
    """Background-subtraction concept tracker for static cameras (no weights)."""

    def __init__(self, cfg: ClassicalTrackerConfig | None = None):
        self.cfg = cfg or ClassicalTrackerConfig()
        self._states: OrderedDict[tuple, VideoState] = OrderedDict()

    def _state(self, video) -> VideoState:
        key = video_key(video)
        if key in self._states:
            self._states.move_to_end(key)
        else:
            if len(self._states) >= self.cfg.cache_videos:  # keep one scene's views
                self._states.popitem(last=False)
            self._states[key] = VideoState(video, self.cfg)
        return self._states[key]

    def _check_category(self, category: str) -> None:
        if category not in self.cfg.categories:
            raise ValueError(f"the classical tracker knows categories {self.cfg.categories}, "
                             f"got {category!r}")

    def track(self, video, category: str) -> list[Tracklet]:
        """All ``category`` objects of one view as tracklets (1-based frame numbers)."""
        self._check_category(category)
        if len(video) == 0:
            return []
        st = self._state(video)
        out = []
        for idx, boxes, scores, dets in st.tracks(category):
            if sum(d is not None for d in dets) < self.cfg.min_length:
                continue
            masks = tuple(mask_rle(st.fg.shape, d.region, d.mask) if d is not None
                          else st.box_mask(int(i), b)
                          for i, b, d in zip(idx, boxes, dets, strict=True))
            out.append(Tracklet(video.scene, video.view, len(out) + 1, category,
                                video.frame_numbers[idx], _clip_boxes(boxes, st.fg.shape),
                                scores, masks))
        return out

    def repropagate(self, video, seed_frame: int, seed_mask: MaskRLE, direction: str,
                    category: str = "person") -> Tracklet:
        """Follow the object of ``seed_mask`` from ``seed_frame`` (included) forward or
        backward in time; the tracklet holds the seed frame and the frames it was found in
        (short gaps interpolated)."""
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        self._check_category(category)
        st = self._state(video)
        i0 = video.index_of(seed_frame)
        step = 1 if direction == "forward" else -1
        rows = _rows_of_track(st, i0, seed_mask, step, category)
        if rows is None:
            rows = follow(st, i0, seed_mask, step, category, self.cfg)
        elif self.cfg.reprop_extend and len(rows) > 1 and rows[-1][3] is not None:
            last = rows[-1][3]
            more = follow(st, rows[-1][0], mask_rle(st.fg.shape, last.region, last.mask), step,
                          category, self.cfg)
            rows += more[1:] if step > 0 else more[:-1]
        rows.sort(key=lambda r: r[0])
        idx = np.array([r[0] for r in rows])
        boxes = _clip_boxes(np.array([r[1] for r in rows]).reshape(-1, 4), st.fg.shape)
        masks = tuple(seed_mask if i == i0 else
                      mask_rle(st.fg.shape, d.region, d.mask) if d is not None
                      else st.box_mask(int(i), b)
                      for i, b, _, d in rows)
        return Tracklet(video.scene, video.view, 0, category, video.frame_numbers[idx], boxes,
                        np.array([r[2] for r in rows]), masks)


def _rows_of_track(st, i0: int, seed_mask: MaskRLE, step: int, category: str):
    """The rows from frame index i0 on (in direction ``step``, i0 first) of the track that
    holds the seed at i0 (mask IoU >= 0.5 with its detection, or box IoU for an
    interpolated frame), or None."""
    seed = seed_mask.decode()
    box = seed_mask.to_box()
    if box is None:
        raise ValueError("seed mask is empty")
    best, arg = 0.5, None
    for tr in st.tracks(category):
        k = np.flatnonzero(tr[0] == i0)
        if not k.size:
            continue
        d = tr[3][k[0]]
        if d is None:
            iou = float(iou_matrix(np.array([box.xywh]), tr[1][k])[0, 0])
        else:
            y0, y1, x0, x1 = d.region
            inter = np.count_nonzero(seed[y0:y1, x0:x1] & d.mask)
            iou = inter / max(1, seed_mask.area + np.count_nonzero(d.mask) - inter)
        if iou >= best:
            best, arg = iou, (tr, int(k[0]))
    if arg is None:
        return None
    (idx, boxes, scores, dets), k = arg
    sel = range(k, len(idx)) if step > 0 else range(k, -1, -1)
    return [(int(idx[j]), boxes[j], float(scores[j]), dets[j]) for j in sel]


def _clip_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """xywh boxes clipped to the image."""
    h, w = shape
    x0 = np.clip(boxes[:, 0], 0, w)
    y0 = np.clip(boxes[:, 1], 0, h)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, w)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, h)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
