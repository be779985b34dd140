"""Everything the classical tracker derives from one video, computed once and cached:
foreground model, perspective size model, per-frame detections and their colours."""

from __future__ import annotations

import hashlib

import numpy as np

from raysys.backends.classical.associate import associate, colour_histogram, finish_tracks
from raysys.backends.classical.config import ClassicalTrackerConfig
from raysys.backends.classical.detect import Detection, detect_frame, fit_size_model
from raysys.backends.classical.foreground import Foreground, _sample_indices
from raysys.types import MaskRLE

__all__ = ["VideoState", "video_key", "mask_rle"]


def video_key(video) -> tuple:
    """Identity of a video by content: name, length and a digest of two sampled frames
    (two VideoFrames objects of one folder share the cached state; same-named scenes of
    different datasets do not)."""
    n = len(video)
    dig = hashlib.blake2b(digest_size=12)
    for i in {0, n // 2, n - 1} if n else ():
        dig.update(np.ascontiguousarray(np.asarray(video[i])[::7, ::7]).tobytes())
    return (video.scene, video.view, n, dig.hexdigest())


def mask_rle(shape: tuple[int, int], region: tuple[int, int, int, int],
             crop: np.ndarray) -> MaskRLE:
    """MaskRLE of an (H, W) mask that is ``crop`` at ``region`` (y0, y1, x0, x1), else 0,
    without building the full mask."""
    h, w = shape
    y0, _, x0, _ = region
    ys, xs = np.nonzero(crop.T)  # column-major order: sort by column, then row
    pos = (xs + y0) + (ys + x0) * h  # crop.T rows are columns
    if pos.size == 0:
        return MaskRLE(int(h), int(w), (int(h * w),))
    brk = np.flatnonzero(np.diff(pos) > 1)
    starts = np.concatenate(([pos[0]], pos[brk + 1]))
    ends = np.concatenate((pos[brk] + 1, [pos[-1] + 1]))
    gaps = starts - np.concatenate(([0], ends[:-1]))
    counts = np.empty(2 * starts.size + 1, np.int64)
    counts[0:-1:2], counts[1::2] = gaps, ends - starts
    counts[-1] = h * w - ends[-1]
    if counts[-1] == 0:
        counts = counts[:-1]
    return MaskRLE(int(h), int(w), tuple(int(c) for c in counts))


class VideoState:
    """Foreground, size model and detections of one video (lazily, cached)."""

    def __init__(self, video, cfg: ClassicalTrackerConfig):
        self.video, self.cfg = video, cfg
        self.fg = Foreground(video, cfg)
        self.size = self._fit_size()
        self._dets: dict[int, list[Detection]] = {}
        self._hists: dict[tuple[int, int], np.ndarray] = {}
        self._tracks: dict[str, list] = {}
        self._persons: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._person_net = None
        if cfg.person_detector:
            from raysys.backends.classical.person_net import load_person_detector

            self._person_net = load_person_detector(cfg.person_detector,
                                                    cfg.person_det_threshold)

    def _fit_size(self):
        boxes = []
        for i in _sample_indices(len(self.video), self.cfg.size_frames):
            _, stats, keep = self.fg.components(int(i))
            boxes += [stats[c, :4] for c in keep]
        return fit_size_model(np.array(boxes, float).reshape(-1, 4), self.fg.shape, self.cfg)

    def detections(self, i: int) -> list[Detection]:
        if i not in self._dets:
            persons = self.person_boxes(i) if self._person_net is not None else None
            self._dets[i] = detect_frame(self.fg, i, self.size, self.cfg, persons)
        return self._dets[i]

    def person_boxes(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The learned person detector's ``(boxes, scores)`` of frame i (run on batches of
        ``person_det_batch`` frames, cached)."""
        if i not in self._persons:
            n = self.cfg.person_det_batch
            idx = range(i - i % n, min(len(self.video), i - i % n + n))
            res = self._person_net.detect([np.asarray(self.video[j]) for j in idx],
                                          [self.fg.mask(j) for j in idx])
            self._persons.update(zip(idx, res, strict=True))
        return self._persons[i]

    def tracks(self, category: str) -> list:
        """Finished tracks of a category (see :func:`finish_tracks`), cached."""
        if category not in self._tracks:
            det_frames, hist_frames = [], []
            for i in range(len(self.video)):
                ks = [k for k, d in enumerate(self.detections(i)) if d.category == category]
                det_frames.append([self.detections(i)[k] for k in ks])
                hist_frames.append([self.histogram(i, k) for k in ks])
            self._tracks[category] = finish_tracks(
                associate(det_frames, hist_frames, self.cfg), self.cfg)
        return self._tracks[category]

    def histogram(self, i: int, k: int) -> np.ndarray:
        """Colour histogram of detection k of frame i."""
        if (i, k) not in self._hists:
            d = self.detections(i)[k]
            y0, y1, x0, x1 = d.region
            frame = self.fg.frame(i)
            self._hists[(i, k)] = colour_histogram(frame[y0:y1, x0:x1], d.mask,
                                                   self.cfg.app_parts, self.cfg.app_bins)
        return self._hists[(i, k)]

    def box_mask(self, i: int, box: np.ndarray) -> MaskRLE:
        """Foreground inside ``box`` in frame i (the whole box when it has none)."""
        h, w = self.fg.shape
        x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
        x1 = int(min(w, max(x0 + 1, np.ceil(box[0] + box[2]))))
        y1 = int(min(h, max(y0 + 1, np.ceil(box[1] + box[3]))))
        crop = self.fg.mask(i)[y0:y1, x0:x1]
        if not crop.any():
            crop = np.ones((y1 - y0, x1 - x0), bool)
        return mask_rle((h, w), (y0, y1, x0, x1), crop)
