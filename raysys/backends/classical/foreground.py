"""Background model and foreground masks of a static camera.

The background is a per-pixel *mode* over sampled frames (the densest quarter of the
samples' brightness, "shorth"), refined by averaging the samples close to it: unlike the
median it keeps the ground where people pass or stand for up to ~3/4 of the video, as
long as the ground is the single most common appearance. Foreground = colour difference
above a noise-adaptive threshold, minus cast shadows (Horprasert brightness/chromaticity
test plus a texture check), cleaned by morphology.
"""

from __future__ import annotations

import numpy as np

from raysys.backends.classical.config import ClassicalTrackerConfig

__all__ = ["estimate_background", "Foreground"]

_GRAY = np.array([0.3, 0.55, 0.15], np.float32)


def _sample_indices(n_frames: int, n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n_frames - 1, min(n, n_frames)).round().astype(int))


def _mode(gray: np.ndarray, flat: list[np.ndarray], m: int, valid: np.ndarray | None = None):
    """Per pixel, the sample at the middle of the tightest window of ``m`` sorted
    brightness values among the ``valid`` (S, N) samples: (colour (N, 3), spread (N,))."""
    s, n = len(flat), gray.shape[0]
    if valid is not None:  # invalid samples sort last, far apart: no window takes them
        gray = np.where(valid.T, gray, 20000 + 100 * np.arange(s, dtype=np.int16))
    gs = np.sort(gray, axis=1)
    spread = gs[:, m - 1:] - gs[:, : s - m + 1]
    k = np.argmin(spread, axis=1)
    rows = np.arange(n)
    pick = np.argmax(gray == gs[rows, k + m // 2][:, None], axis=1)
    mode = np.empty((n, 3), np.float32)
    for j in range(s):
        sel = pick == j
        mode[sel] = flat[j][sel]
    return mode, spread[rows, k]


def _refine(flat: list[np.ndarray], mode: np.ndarray, tol: float,
            valid: np.ndarray | None = None):
    """Mean of the samples within ``tol`` of ``mode`` (less noise) and which they are."""
    import cv2

    n = mode.shape[0]
    acc = np.zeros((n, 3), np.float32)
    near = np.zeros((len(flat), n), bool)
    ones = np.ones((1, 3), np.float32)
    for j, f in enumerate(flat):
        ff = f.astype(np.float32)
        d = cv2.transform(cv2.absdiff(ff, mode).reshape(n, 1, 3), ones).ravel()
        near[j] = d < tol if valid is None else (d < tol) & valid[j]
        acc += ff * near[j][:, None]
    cnt = near.sum(axis=0)
    return np.where(cnt[:, None] > 0, acc / np.maximum(cnt, 1)[:, None], mode), near


def estimate_background(frames: list[np.ndarray], cfg: ClassicalTrackerConfig) -> np.ndarray:
    """(H, W, 3) float32 background from S (H, W, 3) uint8 sample frames.

    Per pixel, the ``bg_mode_frac`` of the samples with the tightest brightness range holds
    the mode; the background is the mean of the samples within ``bg_inlier_tol`` (sum of
    absolute RGB differences) of the sample at the mode. Where the other samples hold a
    second stable appearance, the one that continues the surrounding background without
    an edge wins (a person who stood still most of the video is not background).
    """
    import cv2

    s = len(frames)
    h, w = frames[0].shape[:2]
    n = h * w
    gray = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY).ravel()
                     for f in frames], axis=1).astype(np.int16)  # (N, S)
    flat = [np.asarray(f).reshape(n, 3) for f in frames]
    m = max(1, min(s, int(round(cfg.bg_mode_frac * s))))
    bg, near = _refine(flat, _mode(gray, flat, m)[0], cfg.bg_inlier_tol)
    m2 = max(2, int(round(cfg.ghost_min_frac * s)))
    if cfg.ghost_repair and s >= 2 * m2:
        other = ~near
        mode2, spread2 = _mode(gray, flat, m2, other)
        bg2, near2 = _refine(flat, mode2, cfg.bg_inlier_tol, other)
        cand = (spread2 <= cfg.ghost_spread) & (near2.sum(axis=0) >= m2)
        bg = _repair_ghosts(bg.reshape(h, w, 3), bg2.reshape(h, w, 3), cand.reshape(h, w),
                            cfg.ghost_edge_ratio)
    return bg.reshape(h, w, 3).astype(np.float32)


def _repair_ghosts(bg: np.ndarray, alt: np.ndarray, cand: np.ndarray,
                   ratio: float) -> np.ndarray:
    """Regions of ``cand`` take the alternative background where it has weaker edges along
    the region's border than ``bg`` (an object standing in ``bg`` is outlined by edges; the
    ground it hides continues its surroundings)."""
    import cv2

    k3 = np.ones((3, 3), np.uint8)
    c = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, k3)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(c, connectivity=8)
    if n <= 1:
        return bg
    mixed = np.where(c[..., None] > 0, alt, bg).astype(np.float32)

    def edges(img):
        g = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2GRAY)
        return np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1))

    e1, e2 = edges(bg), edges(mixed)
    out = bg.copy()
    h, w = c.shape
    for r in range(1, n):
        x, y, bw, bh, area = stats[r]
        if area < 20:
            continue
        y0, y1, x0, x1 = max(0, y - 3), min(h, y + bh + 3), max(0, x - 3), min(w, x + bw + 3)
        reg = (labels[y0:y1, x0:x1] == r).astype(np.uint8)
        band = (cv2.dilate(reg, k3, iterations=2) > 0) & ~(cv2.erode(reg, k3) > 0)
        if e2[y0:y1, x0:x1][band].mean() < ratio * e1[y0:y1, x0:x1][band].mean():
            sel = cv2.dilate(reg, k3) > 0
            out[y0:y1, x0:x1][sel] = alt[y0:y1, x0:x1][sel]
    return out


class Foreground:
    """Foreground masks of one video against its background (masks cached)."""

    def __init__(self, video, cfg: ClassicalTrackerConfig):
        import cv2

        self.cv2, self.cfg, self.video = cv2, cfg, video
        idx = _sample_indices(len(video), cfg.bg_samples)
        bg = estimate_background([np.asarray(video[int(i)]) for i in idx], cfg)
        self.bg = cv2.GaussianBlur(bg, (5, 5), 0)
        self._bg_gray = cv2.transform(self.bg, _GRAY[None]).reshape(self.bg.shape[:2])
        self._bg_norm2 = np.maximum((self.bg * self.bg).sum(axis=2), 1.0)
        self._bg_mean = cv2.blur(self._bg_gray, (7, 7))
        self._bg_var = np.maximum(
            cv2.blur(self._bg_gray * self._bg_gray, (7, 7)) - self._bg_mean**2, 0.0)
        h, w = self.bg.shape[:2]
        self.shape = (h, w)
        self.min_area = max(8, int(cfg.min_area_frac * h * w))
        k = max(3, int(round(min(h, w) / 120)) | 1)
        self.k_open = np.ones((3, 3), np.uint8)
        self.k_close = np.ones((k, k), np.uint8)
        self._cache: dict[int, np.ndarray] = {}
        self._frame: tuple[int, np.ndarray | None] = (-1, None)

    def frame(self, i: int) -> np.ndarray:
        """The i-th frame (the last one read is kept: detections of a frame share it)."""
        if self._frame[0] != i:
            self._frame = (i, np.asarray(self.video[i]))
        return self._frame[1]

    def mask(self, i: int) -> np.ndarray:
        """(H, W) bool foreground of the i-th frame (cached)."""
        out = self._cache.get(i)
        if out is not None:
            return out
        cv2 = self.cv2
        f = cv2.GaussianBlur(self.frame(i).astype(np.float32), (5, 5), 0)
        f = self._compensate_gain(f)
        diff = cv2.absdiff(f, self.bg)
        d = cv2.transform(diff, np.ones((1, 3), np.float32)).reshape(self.shape)
        sub = d[::4, ::4]
        med = float(np.median(sub))
        sigma = 1.4826 * float(np.median(np.abs(sub - med))) + 1e-6
        thr = max(self.cfg.fg_min_threshold, self.cfg.fg_sigma * sigma)
        m = d > thr
        if self.cfg.shadow_suppression and m.any():
            m &= ~self._shadow(f, m)
        m = m.astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, self.k_open)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, self.k_close)
        out = m.astype(bool)
        if len(self._cache) >= 400:
            self._cache.clear()
        self._cache[i] = out
        return out

    def _compensate_gain(self, f: np.ndarray) -> np.ndarray:
        """Undo a global exposure change (flicker): scale by the median ratio to the
        background over a pixel grid (robust to the foreground)."""
        fs, bs = f[::7, ::7].reshape(-1, 3), self.bg[::7, ::7].reshape(-1, 3)
        ok = bs.sum(axis=1) > 30.0
        if ok.sum() < 100:
            return f
        gain = float(np.median(bs[ok].sum(axis=1) / np.maximum(fs[ok].sum(axis=1), 1.0)))
        if abs(gain - 1.0) < 0.01 or not 0.5 < gain < 2.0:
            return f
        return f * np.float32(gain)

    def _shadow(self, f: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Cast shadows: darker than the background with the same chromaticity
        (Horprasert et al.: brightness ratio alpha, chromaticity distortion), keeping the
        background's texture (local normalised cross-correlation)."""
        cv2, bg = self.cv2, self.bg
        alpha = cv2.transform(f * bg, np.ones((1, 3), np.float32)).reshape(self.shape)
        alpha /= self._bg_norm2
        lo, hi = self.cfg.shadow_ratio
        cand = cand & (alpha > lo) & (alpha < hi)
        if not cand.any():
            return cand
        ys, xs = np.nonzero(cand)
        dist = np.linalg.norm(f[ys, xs] - alpha[ys, xs, None] * bg[ys, xs], axis=1)
        dist /= np.sqrt(self._bg_norm2[ys, xs])
        keep = dist < self.cfg.shadow_chroma
        ys, xs = ys[keep], xs[keep]
        out = np.zeros(self.shape, bool)
        if ys.size == 0 or self.cfg.shadow_texture is None:
            out[ys, xs] = True
            return out
        # a shadow keeps the ground's texture; a uniformly coloured coat over texture does not
        g, b = cv2.transform(f, _GRAY[None]).reshape(self.shape), self._bg_gray
        k = (7, 7)
        mg = cv2.blur(g, k)
        cov = cv2.blur(g * b, k)[ys, xs] - mg[ys, xs] * self._bg_mean[ys, xs]
        vg = np.maximum(cv2.blur(g * g, k)[ys, xs] - mg[ys, xs] ** 2, 0.0)
        vb = self._bg_var[ys, xs]
        ncc = cov / np.sqrt(np.maximum(vg * vb, 1e-6))
        out[ys, xs] = (ncc > self.cfg.shadow_texture) | (vb <= 4.0)
        return out

    def components(self, i: int):
        """Connected components of frame i: (labels (H, W) int32, stats (n, 5), kept ids)."""
        m = self.mask(i).astype(np.uint8)
        n, labels, stats, _ = self.cv2.connectedComponentsWithStats(m, connectivity=8)
        keep = [c for c in range(1, n) if stats[c, 4] >= self.min_area]
        return labels, stats, keep
