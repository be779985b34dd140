"""Re-propagation: follow one object from a mask prompt through a video's detections.

A single-object version of the association: the seed (mask, its colours) predicts the
next box with constant foot velocity; the detection of the category with the lowest
association cost inside the gate continues the track. When none qualifies (the object is
merged with others or faint), the predicted box is kept if it holds enough foreground
("coasting" on the blob, velocity unchanged); after ``reprop_max_miss`` frames without
either, the object is lost. Gaps that end in a re-found object are interpolated.
"""

from __future__ import annotations

import numpy as np

from raysys.backends.classical.associate import TrackState, _pair_costs, colour_histogram
from raysys.backends.classical.config import ClassicalTrackerConfig
from raysys.backends.classical.detect import Detection
from raysys.types import MaskRLE

__all__ = ["follow"]


def _seed_detection(st, i: int, seed_mask: MaskRLE,
                    cfg: ClassicalTrackerConfig) -> tuple[Detection, np.ndarray]:
    m = seed_mask.decode()
    if m.shape != st.fg.shape:
        raise ValueError(f"seed mask is {m.shape}, the video's frames are {st.fg.shape}")
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        raise ValueError("seed mask is empty")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    box = np.array([x0, y0, x1 - x0, y1 - y0], float)
    crop = m[y0:y1, x0:x1]
    hist = colour_histogram(st.fg.frame(i)[y0:y1, x0:x1], crop, cfg.app_parts,
                            cfg.app_bins)
    return Detection(box, 1.0, "seed", (int(y0), int(y1), int(x0), int(x1)), crop), hist


def _coast(st, i: int, t: TrackState, cfg: ClassicalTrackerConfig) -> Detection | None:
    """The predicted box as a detection when it holds enough foreground."""
    h, w = st.fg.shape
    b = t.predict(i)
    x0, y0 = int(max(0, round(b[0]))), int(max(0, round(b[1])))
    x1, y1 = int(min(w, round(b[0] + b[2]))), int(min(h, round(b[1] + b[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    crop = st.fg.mask(i)[y0:y1, x0:x1]
    if crop.mean() < cfg.reprop_coast_fill:
        return None
    return Detection(np.array([x0, y0, x1 - x0, y1 - y0], float), 0.3, "coast",
                     (y0, y1, x0, x1), crop)


def follow(st, i0: int, seed_mask: MaskRLE, step: int, category: str,
           cfg: ClassicalTrackerConfig):
    """[(frame index, box, score, detection or None)] from frame index i0 (included) in
    direction ``step`` (+1 / -1)."""
    seed, hist = _seed_detection(st, i0, seed_mask, cfg)
    t = TrackState(0)
    t.add(step * i0, seed, hist, cfg)
    misses, coasted = 0, 0
    i = i0 + step
    # TrackState works in increasing order: it sees k = step * i
    while 0 <= i < len(st.video) and misses <= cfg.reprop_max_miss:
        ks = [k for k, d in enumerate(st.detections(i)) if d.category == category]
        dets = [st.detections(i)[k] for k in ks]
        hists = [st.histogram(i, k) for k in ks]
        cost = _pair_costs([t], step * i, dets, hists, cfg)
        c = int(np.argmin(cost[0])) if dets else -1
        if c >= 0 and np.isfinite(cost[0, c]):
            t.add(step * i, dets[c], hists[c], cfg)
            misses = coasted = 0
        else:
            d = _coast(st, i, t, cfg) if coasted < cfg.reprop_max_miss else None
            if d is not None:
                t.idx.append(step * i)
                t.dets.append(d)
                coasted += 1
            misses += 1
        i += step
    return _rows(t, step)


def _rows(t: TrackState, step: int):
    """Track rows in increasing frame order, trailing coasted frames dropped, gaps
    between found frames interpolated."""
    pairs = [(step * k, d) for k, d in zip(t.idx, t.dets, strict=True)]
    while pairs and pairs[-1][1].category == "coast":
        pairs.pop()
    pairs.sort(key=lambda p: p[0])
    out = []
    for n, (i, d) in enumerate(pairs):
        if n:
            j, e = pairs[n - 1]
            for g in range(j + 1, i):
                w = (g - j) / (i - j)
                out.append((g, (1 - w) * e.box + w * d.box, 0.3, None))
        out.append((i, d.box, d.score, d))
    return out
