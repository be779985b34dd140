"""Frame-to-frame association of detections into tracks, and offline clean-up.

Online: constant-velocity prediction of each track's box; the cost of a (track, detection)
pair is ``1 - IoU`` plus ``app_weight`` times the Bhattacharyya distance of their colour
histograms; pairs beyond the gate (IoU below ``iou_match`` and centres farther than
``gate_dist`` box heights) are not allowed; Hungarian matching. Tracks coast through
missed frames for up to ``max_age`` frames.

Offline: tracks that end and tracks that start a few frames later with a consistent
position and appearance are stitched; gaps are filled by linear interpolation; short or
static-and-faint tracks are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from raysys.backends.classical.config import ClassicalTrackerConfig

__all__ = ["colour_histogram", "iou_matrix", "TrackState", "associate", "finish_tracks"]

def colour_histogram(image: np.ndarray, mask: np.ndarray, parts: int = 2,
                     bins: int = 4) -> np.ndarray:
    """Appearance of an object: RGB histograms (``bins`` per channel) of its ``mask``
    pixels in ``parts`` horizontal bands of the mask's height (e.g. upper / lower body),
    each normalised to 1 / parts and concatenated."""
    out = np.full((parts, bins**3), 1.0 / (parts * bins**3))
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return out.ravel()
    q = (image[ys, xs].astype(np.int32) * bins) >> 8
    idx = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    band = np.minimum((ys - ys.min()) * parts // max(1, ys.max() - ys.min() + 1), parts - 1)
    for p in range(parts):
        h = np.bincount(idx[band == p], minlength=bins**3).astype(float)
        if h.sum() > 0:
            out[p] = h / (h.sum() * parts)
    return out.ravel()


def _bhattacharyya(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) distances sqrt(1 - BC) of histogram rows."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    bc = np.sqrt(a) @ np.sqrt(b).T
    return np.sqrt(np.clip(1.0 - bc, 0.0, 1.0))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
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
class TrackState:
    """One track while associating: detections by frame index, motion and appearance."""

    tid: int
    idx: list[int] = field(default_factory=list)  # frame indices (0-based) of detections
    dets: list = field(default_factory=list)  # the Detection objects
    vel: np.ndarray = field(default_factory=lambda: np.zeros(2))  # foot motion px/frame
    hist: np.ndarray | None = None
    misses: int = 0

    @property
    def box(self) -> np.ndarray:
        return self.dets[-1].box

    def predict(self, i: int) -> np.ndarray:
        """Box expected at frame index i (size of the last detections, moving feet)."""
        b = np.median(np.array([d.box for d in self.dets[-3:]]), axis=0)
        last = self.dets[-1].box
        foot = np.array([last[0] + last[2] / 2, last[1] + last[3]])
        foot = foot + self.vel * (i - self.idx[-1])
        return np.array([foot[0] - b[2] / 2, foot[1] - b[3], b[2], b[3]])

    def add(self, i: int, det, hist: np.ndarray, cfg: ClassicalTrackerConfig) -> None:
        if self.dets:
            p, q = self.dets[-1].box, det.box
            dt = max(1, i - self.idx[-1])
            v = np.array([q[0] + q[2] / 2 - p[0] - p[2] / 2, q[1] + q[3] - p[1] - p[3]]) / dt
            k = cfg.vel_smooth if len(self.dets) > 1 else 0.0
            self.vel = k * self.vel + (1 - k) * v
        self.hist = hist if self.hist is None else (
            cfg.app_smooth * self.hist + (1 - cfg.app_smooth) * hist)
        self.idx.append(i)
        self.dets.append(det)
        self.misses = 0


def _foot(b: np.ndarray) -> np.ndarray:
    return np.array([b[0] + b[2] / 2, b[1] + b[3]])


def _pair_costs(tracks: list[TrackState], i: int, dets, hists, cfg: ClassicalTrackerConfig):
    """(tracks, detections) cost matrix, np.inf where the gate forbids the pair."""
    if not tracks or not dets:
        return np.zeros((len(tracks), len(dets)))
    preds = np.array([t.predict(i) for t in tracks])
    boxes = np.array([d.box for d in dets])
    iou = iou_matrix(preds, boxes)
    pf = np.stack([preds[:, 0] + preds[:, 2] / 2, preds[:, 1] + preds[:, 3]], axis=1)
    df = np.stack([boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3]], axis=1)
    scale = np.maximum(preds[:, 3:4], 8.0)
    dist = np.linalg.norm(pf[:, None] - df[None], axis=2) / scale
    hratio = boxes[None, :, 3] / np.maximum(preds[:, None, 3], 1.0)
    app = _bhattacharyya(np.array([t.hist for t in tracks]), np.array(hists))
    cost = (1.0 - iou) + cfg.app_weight * app + cfg.dist_weight * dist
    ok = ((iou >= cfg.iou_match) | (dist <= cfg.gate_dist)) & (hratio > 0.5) & (hratio < 2.0)
    ok &= app <= cfg.app_gate
    return np.where(ok, cost, np.inf)


def associate(det_frames: list[list], hist_frames: list[list[np.ndarray]],
              cfg: ClassicalTrackerConfig) -> list[TrackState]:
    """Tracks (with >= 1 detection) of a video's per-frame detections (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    active: list[TrackState] = []
    done: list[TrackState] = []
    next_id = 1
    for i, (dets, hists) in enumerate(zip(det_frames, hist_frames, strict=True)):
        cost = _pair_costs(active, i, dets, hists, cfg)
        used_t, used_d = set(), set()
        if cost.size:
            big = np.where(np.isfinite(cost), cost, 1e6)
            for r, c in zip(*linear_sum_assignment(big), strict=True):
                if np.isfinite(cost[r, c]):
                    active[r].add(i, dets[c], hists[c], cfg)
                    used_t.add(r)
                    used_d.add(c)
        still = []
        for k, t in enumerate(active):
            if k not in used_t:
                t.misses += 1
            (still if t.misses <= cfg.max_age else done).append(t)
        active = still
        for c, d in enumerate(dets):
            if c not in used_d:
                t = TrackState(next_id)
                t.add(i, d, hists[c], cfg)
                active.append(t)
                next_id += 1
    return done + active


def _stitch(tracks: list[TrackState], cfg: ClassicalTrackerConfig) -> list[TrackState]:
    """Join track ends to later track starts (greedy by cost: foot distance after
    constant-velocity extrapolation, in box heights, plus colour distance)."""
    cands = []
    for a, ta in enumerate(tracks):
        for b, tb in enumerate(tracks):
            gap = tb.idx[0] - ta.idx[-1]
            if a == b or gap <= 0 or gap > cfg.stitch_gap:
                continue
            pred = _foot(ta.box) + ta.vel * gap
            d = np.linalg.norm(pred - _foot(tb.dets[0].box)) / max(ta.box[3], 8.0)
            h = tb.dets[0].box[3] / max(ta.box[3], 1.0)
            app = float(_bhattacharyya(ta.hist[None], tb.hist[None])[0, 0])
            if d <= cfg.stitch_dist * (1 + 0.05 * gap) and app <= cfg.stitch_app and \
                    0.6 < h < 1.6:
                cands.append((d + app, a, b))
    nxt, prv = {}, {}
    for _, a, b in sorted(cands):
        if a not in nxt and b not in prv:
            nxt[a], prv[b] = b, a
    out = []
    for a, t in enumerate(tracks):
        if a in prv:
            continue
        while a in nxt:  # append the chain
            a = nxt[a]
            t.idx += tracks[a].idx
            t.dets += tracks[a].dets
            t.vel, t.hist = tracks[a].vel, tracks[a].hist
        out.append(t)
    return out


def _plausible(t: TrackState, cfg: ClassicalTrackerConfig) -> bool:
    """Enough detections over its span, and (people) not a sliver: a narrow fragment of a
    person split lengthwise, a pole or an edge of a ghost."""
    span = t.idx[-1] - t.idx[0] + 1
    if len(t.dets) < cfg.min_det_frac * span:
        return False
    if t.dets[0].category == "person":
        b = np.array([d.box for d in t.dets])
        return float(np.median(b[:, 3] / np.maximum(b[:, 2], 1.0))) <= cfg.max_aspect
    return True


def finish_tracks(tracks: list[TrackState], cfg: ClassicalTrackerConfig):
    """Stitched, gap-filled tracks: [(frame indices, boxes (n, 4), scores, detections or
    None for interpolated frames)], long enough ones only, ordered by first frame."""
    tracks = [t for t in tracks if len(t.dets) >= cfg.min_hits]
    tracks = _stitch(sorted(tracks, key=lambda t: t.idx[0]), cfg)
    out = []
    for t in tracks:
        if len(t.dets) < cfg.min_length or not _plausible(t, cfg):
            continue
        idx, boxes, scores, dets = [], [], [], []
        for k, (i, d) in enumerate(zip(t.idx, t.dets, strict=True)):
            if k:
                gap = i - t.idx[k - 1]
                if 1 < gap <= cfg.max_gap + 1:
                    b0 = t.dets[k - 1].box
                    for j in range(1, gap):
                        w = j / gap
                        idx.append(t.idx[k - 1] + j)
                        boxes.append((1 - w) * b0 + w * d.box)
                        scores.append(0.3)
                        dets.append(None)
            idx.append(i)
            boxes.append(d.box)
            scores.append(d.score)
            dets.append(d)
        out.append((np.array(idx), np.array(boxes), np.array(scores), dets))
    return sorted(out, key=lambda r: r[0][0])

