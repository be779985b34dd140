"""Per-frame person detection on the foreground: a perspective size model learned from the
video, and a greedy matched filter that splits merged blobs into people.

Size model: on a flat ground seen by a camera without roll, an upright person's image
height is (nearly) a linear function of the image row of their feet, ``h = a * y + b``.
It is fitted robustly to the isolated upright blobs of the video itself (no calibration).

Detection: foreground components are grouped (components a few pixels apart belong to one
group, e.g. a head cut off by a thin gap). A vehicle fills a vehicle-sized window at its
bottom row; its columns are set aside. In the rest of each group, the window of a person's
expected size that best explains the foreground (score: foreground pixels minus ``beta``
times the window area, per expected area) is taken, its pixels are explained away, and
the search repeats until no window scores enough. Each group pixel then goes to the
nearest accepted window; a person's box is the box of their pixels, reaching down to the
window's feet when a nearer person hides part of it, and completed from the size model
when it is much shorter than a person standing at its bottom row (cut by an occluder).
Without a size model (too few upright blobs), each group is one object classified by its
aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysys.backends.classical.config import ClassicalTrackerConfig

__all__ = ["SizeModel", "fit_size_model", "Detection", "detect_frame"]


@dataclass(frozen=True)
class SizeModel:
    """Expected person height (pixels) from the foot row: ``max(a * y + b, min_h)``."""

    a: float
    b: float
    min_h: float = 8.0

    def height(self, y):
        return np.maximum(self.a * np.asarray(y, float) + self.b, self.min_h)

    def height_from_top(self, y_top: float) -> float:
        """Height of a person whose head is at row ``y_top`` (feet at y: y - height(y) =
        y_top)."""
        return max(self.a * (y_top + self.b) / (1.0 - self.a) + self.b, self.min_h)


def fit_size_model(boxes: np.ndarray, shape: tuple[int, int],
                   cfg: ClassicalTrackerConfig) -> SizeModel | None:
    """RANSAC line of blob height on foot row over upright blobs (xywh, many frames).

    Blobs of people with shadows or of several people in a column lie above the line,
    fragments below it; the line that most blobs agree with (relative residual under
    ``size_tol``) is refitted by least squares on its inliers.
    """
    h_img, _ = shape
    if len(boxes) == 0:
        return None
    x, y, w, h = np.asarray(boxes, float).T
    lo, hi = cfg.size_aspect
    ok = (h >= lo * w) & (h <= hi * w) & (y > 1) & (y + h < h_img - 1) & (h >= 8)
    yb, hh = (y + h)[ok], h[ok]
    if yb.size < cfg.size_min_blobs:
        return None
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, yb.size, (2, 400))
    dy = yb[j] - yb[i]
    good = np.abs(dy) >= 0.05 * h_img
    if not good.any():  # all blobs on one row: a constant height
        a_c, b_c = np.zeros(1), np.array([np.median(hh)])
    else:
        i, j, dy = i[good], j[good], dy[good]
        a_c = (hh[j] - hh[i]) / dy
        b_c = hh[i] - a_c * yb[i]
        a_c, b_c = np.append(a_c, 0.0), np.append(b_c, np.median(hh))
    pred = a_c[:, None] * yb[None] + b_c[:, None]  # (hypotheses, blobs)
    inl = np.abs(hh[None] - pred) < np.maximum(cfg.size_tol * pred, 2.0)
    inl &= (a_c >= 0)[:, None] & (pred > 0)
    # support counted per band of foot rows, capped: a line must be backed by blobs over a
    # range of rows, not by one object seen in many frames
    band = np.minimum((yb / h_img * 20).astype(int), 19)
    per_band = np.stack([inl[:, band == k].sum(axis=1) for k in range(20)], axis=1)
    support = np.minimum(per_band, cfg.size_band_cap).sum(axis=1)
    # a line under which blobs would be far taller than any person (or stand above the
    # horizon) is implausible: such blobs count against it
    bad = hh[None] > cfg.size_max_ratio * np.maximum(pred, 0.0)
    per_band = np.stack([bad[:, band == k].sum(axis=1) for k in range(20)], axis=1)
    support = support - np.minimum(per_band, cfg.size_band_cap).sum(axis=1)
    best = inl[int(np.argmax(support))]
    if best.sum() < cfg.size_min_blobs:
        return None
    a = b = 0.0
    for it in range(cfg.size_refits + 1):  # least squares on the inliers, then on the
        if it:  # inliers of the refitted line
            p = a * yb + b
            best = np.abs(hh - p) < np.maximum(cfg.size_tol * p, 2.0)
            if best.sum() < cfg.size_min_blobs:
                return None
        A = np.stack([yb[best], np.ones(int(best.sum()))], axis=1)
        (a, b), *_ = np.linalg.lstsq(A, hh[best], rcond=None)
    if a < 0 or a * h_img + b <= 0:
        return None
    return SizeModel(float(a), float(b))


@dataclass
class Detection:
    """One object in one frame: box (xywh), its pixels (bool mask over ``region``), score."""

    box: np.ndarray
    score: float
    category: str
    region: tuple[int, int, int, int]  # y0, y1, x0, x1 of ``mask`` in the image
    mask: np.ndarray

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, bool)
        y0, y1, x0, x1 = self.region
        out[y0:y1, x0:x1] = self.mask
        return out


def _groups(fg, i: int):
    """Components of frame i grouped by proximity: [(y0, y1, x0, x1, bool mask crop)]."""
    cv2 = fg.cv2
    m = fg.mask(i).astype(np.uint8)
    near = cv2.dilate(m, np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(near, connectivity=8)
    out = []
    for c in range(1, n):
        x, y, w, h, _ = stats[c]
        crop = (labels[y:y + h, x:x + w] == c) & (m[y:y + h, x:x + w] > 0)
        if crop.sum() >= fg.min_area:
            out.append((y, y + h, x, x + w, crop))
    return out


def _rect_sum(ii: np.ndarray, y0, y1, x0, x1) -> np.ndarray:
    """Sums of the crop's weights over rectangles (float bounds, clipped to the crop)."""
    gh, gw = ii.shape[0] - 1, ii.shape[1] - 1
    y0, y1 = (np.clip(np.round(v), 0, gh).astype(int) for v in (y0, y1))
    x0, x1 = (np.clip(np.round(v), 0, gw).astype(int) for v in (x0, x1))
    return ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]


def _window_scores(ii: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: SizeModel,
                   shape: tuple[float, float, float], off: tuple[int, int],
                   img_hw: tuple[int, int], front=()):
    """Matched-filter score of windows with their bottom centre at (rows, cols) (crop
    coordinates). ``shape`` = (height, width, beta): height and width as multiples of the
    person height at the bottom row; score = (weight sum - beta * window area inside the
    image) / expected area. Also returned: the fraction of the window hidden behind the
    accepted windows ``front`` [(x0, x1, y0, y1)] whose bottom is lower (nearer the camera).

    ``ii`` is the integral image of the crop's weights; returns (score, hidden fraction,
    x0, x1, y0) arrays of shape (len(rows), len(cols)), windows in crop coordinates.
    """
    hp = size.height(rows + off[0])[:, None]
    hh, ww, beta = shape[0] * hp, np.maximum(3.0, shape[1] * hp), shape[2]
    yb = np.broadcast_to(rows[:, None].astype(float), (rows.size, cols.size))
    xc = cols[None, :].astype(float)
    x0, x1, y0 = xc - ww / 2, xc + ww / 2, yb - hh
    s = _rect_sum(ii, y0, yb, x0, x1)
    # the window's area inside the image (outside: unknown, not penalised)
    h_img, w_img = img_hw
    ax = np.clip(x1 + off[1], 0, w_img) - np.clip(x0 + off[1], 0, w_img)
    ay = np.clip(yb + off[0], 0, h_img) - np.clip(y0 + off[0], 0, h_img)
    area = np.maximum(ax, 0) * np.maximum(ay, 0)
    hidden = np.zeros_like(area)
    for fx0, fx1, fy0, fy1 in front:
        ox = np.clip(np.minimum(x1, fx1) - np.maximum(x0, fx0), 0, None)
        oy = np.clip(np.minimum(yb, fy1) - np.maximum(y0, fy0), 0, None)
        hidden = np.maximum(hidden, np.where(fy1 > yb, ox * oy, 0.0))
    score = (s - beta * area) / (hh * ww)
    return score, hidden / (hh * ww), x0, x1, y0


def _split_group(crop: np.ndarray, off: tuple[int, int], size: SizeModel,
                 cfg: ClassicalTrackerConfig, img_hw: tuple[int, int]):
    """Greedy person windows in one group: [(score, x0, x1, y0, y1, hidden fraction)] in
    crop coordinates."""
    gh, gw = crop.shape
    wts = crop.astype(np.float64)
    rows = np.arange(max(1, int(0.25 * gh)), gh + 1, dtype=float)
    cols = np.arange(0, gw, dtype=float)
    found = []
    for _ in range(cfg.det_max_people):
        ii = np.zeros((gh + 1, gw + 1))
        ii[1:, 1:] = wts.cumsum(0).cumsum(1)
        score, hidden, x0, x1, y0 = _window_scores(
            ii, rows, cols, size, (1.0, cfg.person_width, cfg.det_beta), off, img_hw,
            [w[1:5] for w in found])
        r, c = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[r, c] < cfg.det_min_score:
            break
        a, b, t = (int(round(v[r, c])) for v in (x0, x1, y0))
        found.append((float(score[r, c]), max(a, 0), min(b, gw), max(t, 0), int(rows[r]),
                      float(hidden[r, c])))
        wts[max(t, 0):int(rows[r]), max(a, 0):min(b, gw)] *= cfg.det_explain
    return found


def _assign_pixels(crop: np.ndarray, wins, size: SizeModel, off: tuple[int, int],
                   reach: tuple[float, float, float]):
    """Each group pixel to the nearest accepted window, up to ``reach`` = (above, side,
    below) person heights outside it; inside overlapping windows the nearest one (lowest
    bottom row) wins."""
    ys, xs = np.nonzero(crop)
    if not wins or ys.size == 0:
        return [np.zeros_like(crop) for _ in wins]
    best = np.full(ys.size, -1)
    bestd = np.full(ys.size, np.inf)
    px, py = xs + 0.5, ys + 0.5
    for k, (_, x0, x1, y0, y1, _) in enumerate(wins):
        hh = float(size.height(y1 + off[0]))
        dx = np.maximum(0.0, np.maximum(x0 - px, px - x1)) / hh
        up = np.maximum(0.0, y0 - py) / hh
        down = np.maximum(0.0, py - y1) / hh
        ok = (up <= reach[0]) & (dx <= reach[1]) & (down <= reach[2])
        d = dx + up + down - 1e-3 * y1 / hh  # tie-break: the nearer person
        ok &= d < bestd
        best[ok], bestd[ok] = k, d[ok]
    out = []
    for k in range(len(wins)):
        m = np.zeros_like(crop)
        sel = best == k
        m[ys[sel], xs[sel]] = True
        out.append(m)
    return out


def _box_of(m: np.ndarray, off: tuple[int, int]) -> np.ndarray | None:
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        return None
    return np.array([xs.min() + off[1], ys.min() + off[0], xs.max() - xs.min() + 1,
                     ys.max() - ys.min() + 1], float)


def _find_vehicle(crop: np.ndarray, off: tuple[int, int], size: SizeModel,
                  cfg: ClassicalTrackerConfig, img_hw: tuple[int, int]):
    """A vehicle in a group: (its pixels, a bool mask like ``crop``; its xywh image box),
    or None.

    A vehicle fills a window as high as ~0.6 and as wide as ~0.9 person heights at its
    bottom row (people, even side by side, leave gaps); its extent is the run of columns
    around that window that stay filled in its rows, and it is at least ``car_min_width``
    person heights wide unless the image border cuts it.
    """
    gh, gw = crop.shape
    if gw < cfg.car_window[1] * float(size.height(off[0] + gh)) * 0.9:
        return None
    ii = np.zeros((gh + 1, gw + 1))
    ii[1:, 1:] = crop.cumsum(0).cumsum(1)
    rows = np.arange(max(1, int(0.3 * gh)), gh + 1, dtype=float)
    cols = np.arange(0, gw, dtype=float)
    score, _, x0, x1, y0 = _window_scores(ii, rows, cols, size, (*cfg.car_window, 0.0), off,
                                          img_hw)
    r, c = np.unravel_index(int(np.argmax(score)), score.shape)
    if score[r, c] < cfg.car_min_fill:
        return None
    ya, yb = max(0, int(round(y0[r, c]))), int(rows[r])
    a, b = max(0, int(round(x0[r, c]))), min(gw, int(round(x1[r, c])))
    car = _grow_vehicle(crop, (ya, yb, a, b))
    box = _box_of(car, off)
    if box is None:  # (the erosion can leave nothing of a thin one)
        return None
    cut = box[0] <= 1 or box[0] + box[2] >= img_hw[1] - 1  # cut by the image border
    if not cut and box[2] < cfg.car_min_width * float(size.height(box[1] + box[3])):
        return None  # too narrow for a vehicle: people side by side
    return car, box


def _grow_vehicle(crop: np.ndarray, win: tuple[int, int, int, int]) -> np.ndarray:
    """The vehicle's pixels: the parts of the group that touch its window once thin links
    are cut (an erosion separates a person who merely touches the vehicle)."""
    import cv2

    k = np.ones((3, 3), np.uint8)
    core = cv2.erode(crop.astype(np.uint8), k, iterations=2)
    n, labels = cv2.connectedComponents(core, connectivity=4)
    ya, yb, a, b = win
    ids = np.unique(labels[ya:yb, a:b])
    sel = np.isin(labels, ids[ids > 0]).astype(np.uint8)
    return (cv2.dilate(sel, k, iterations=3) > 0) & crop


def detect_frame(fg, i: int, size: SizeModel | None, cfg: ClassicalTrackerConfig,
                 persons: tuple[np.ndarray, np.ndarray] | None = None):
    """Detections of frame i: vehicles by shape, people from the matched filter.

    ``persons``: ``(boxes (n, 4) xywh, scores (n,))`` of a learned person detector
    (``cfg.person_detector``); then they are the people (see
    :func:`_people_from_boxes`) and the matched filter is not used."""
    img_hw = fg.shape
    out: list[Detection] = []
    groups = _groups(fg, i)
    vehicles = [_group_vehicle(crop, (y0, y1, x0, x1), size, cfg, img_hw)
                for y0, y1, x0, x1, crop in groups]
    if persons is not None:
        return _people_from_boxes(fg, i, [v for v in vehicles if v is not None], cfg,
                                  persons)
    for (y0, y1, x0, x1, crop), vehicle in zip(groups, vehicles, strict=True):
        off = (y0, x0)
        if vehicle is not None:
            out.append(vehicle)
            crop = crop & ~vehicle.mask
        if size is None:  # shape rule: an upright group is one person
            if vehicle is None:
                out.append(Detection(_box_of(crop, off), 0.5, "person", (y0, y1, x0, x1),
                                     crop))
            continue
        wins = _split_group(crop, off, size, cfg, img_hw)
        masks = _assign_pixels(crop, wins, size, off, cfg.det_reach)
        for (score, *_, wy1, hidden), m in zip(wins, masks, strict=True):
            box = _box_of(m, off)
            if box is not None and m.sum() >= fg.min_area:
                if hidden > cfg.det_hidden:  # partly behind a nearer person: to the feet
                    box[3] = max(box[3], wy1 + off[0] - box[1])
                elif box[3] < cfg.det_cut * float(size.height(box[1] + box[3])):
                    box[3] = size.height_from_top(box[1])  # lower body hidden by something
                out.append(Detection(box, float(min(1.0, 0.5 + score)), "person",
                                     (y0, y1, x0, x1), m))
    return out


def _group_vehicle(crop: np.ndarray, region: tuple[int, int, int, int],
                   size: SizeModel | None, cfg: ClassicalTrackerConfig,
                   img_hw: tuple[int, int]) -> Detection | None:
    """The vehicle in one foreground group, or None: with a size model a filled
    vehicle-sized window (:func:`_find_vehicle`); without one, the whole group when the
    shape rule says it is not upright."""
    y0, y1, x0, x1 = region
    if size is None:
        box = _box_of(crop, (y0, x0))
        category = _shape_category(box, cfg)
        return None if category == "person" else Detection(box, 0.5, category, region, crop)
    found = _find_vehicle(crop, (y0, x0), size, cfg, img_hw)
    return None if found is None else Detection(found[1], 0.5, "car", region, found[0])


def _people_from_boxes(fg, i: int, vehicles: list[Detection], cfg: ClassicalTrackerConfig,
                       persons: tuple[np.ndarray, np.ndarray]) -> list[Detection]:
    """``vehicles`` and the people of a learned detector's boxes, except those overlapping
    a vehicle by ``person_det_car_iou`` (IoU). A person's pixels are the foreground inside
    their box not taken by a vehicle or a nearer person (lower bottom edge); a person with
    none (standing still, so part of the background) gets the box."""
    h, w = fg.shape
    out = list(vehicles)
    taken = np.zeros((h, w), bool)
    for v in vehicles:
        taken |= v.full_mask((h, w))
    boxes, scores = (np.asarray(a, float) for a in persons)
    boxes = boxes.reshape(-1, 4)
    cars = np.array([d.box for d in vehicles], float).reshape(-1, 4)
    if len(cars) and len(boxes):
        from raysys.backends.classical.associate import iou_matrix

        keep = iou_matrix(boxes, cars).max(1) < cfg.person_det_car_iou
        boxes, scores = boxes[keep], scores[keep]
    m = fg.mask(i)
    for k in np.argsort(-(boxes[:, 1] + boxes[:, 3]), kind="stable"):  # nearest first
        b = boxes[k]
        x0, y0 = int(max(0, np.floor(b[0]))), int(max(0, np.floor(b[1])))
        x1, y1 = int(min(w, np.ceil(b[0] + b[2]))), int(min(h, np.ceil(b[1] + b[3])))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        crop = m[y0:y1, x0:x1] & ~taken[y0:y1, x0:x1]
        if crop.sum() < 0.1 * crop.size:
            crop = np.ones_like(crop)  # no foreground of its own: the whole box
        taken[y0:y1, x0:x1] |= crop
        box = np.array([max(b[0], 0.0), max(b[1], 0.0), 0.0, 0.0])
        box[2], box[3] = min(b[0] + b[2], w) - box[0], min(b[1] + b[3], h) - box[1]
        out.append(Detection(box, float(scores[k]), "person", (y0, y1, x0, x1), crop))
    return out


def _shape_category(box: np.ndarray, cfg: ClassicalTrackerConfig) -> str:
    """Fallback shape rule: upright blobs are people, wide low blobs vehicles/bicycles."""
    aspect = box[3] / max(box[2], 1.0)
    if cfg.person_min_aspect <= aspect <= cfg.person_max_aspect:
        return "person"
    return "car" if aspect < 0.8 else "bicycle"
