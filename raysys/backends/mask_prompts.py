"""SAM prompts from a mask: its tight box, and a box + interior points prompt (how a
concept tracker is re-prompted with a seed mask, paper §3.2)."""

from __future__ import annotations

import numpy as np

__all__ = ["prompt_points", "tight_box"]


def prompt_points(mask: np.ndarray, n_points: int = 5) -> tuple[list[list[float]], list[int]]:
    """A box + points prompt from a mask, in relative (0-1) image coordinates.

    The first two points are the corners of the mask's tight box (SAM labels 2 and 3: how
    SAM 2/3 encode a box prompt); then up to ``n_points`` positive points (label 1): the
    most interior pixel (largest distance to the background), then the most interior pixel
    away from those already chosen, and so on.

    Args:
        mask: (H, W) bool, not empty.
        n_points: positive points to place (>= 1).

    Returns:
        (points [[x, y], ...], labels [2, 3, 1, ...]).
    """
    import cv2

    m = np.asarray(mask, bool)
    if m.ndim != 2 or not m.any():
        raise ValueError("the seed mask must be a non-empty (H, W) mask")
    h, w = m.shape
    ys, xs = np.nonzero(m)
    pts = [[xs.min() / w, ys.min() / h], [(xs.max() + 1) / w, (ys.max() + 1) / h]]
    labels = [2, 3]
    # distance to the nearest background pixel, with a background border around the image
    dist = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(max(1, n_points)):
        k = int(np.argmax(dist))
        if dist.flat[k] <= 0:
            break
        y, x = divmod(k, w)
        pts.append([(x + 0.5) / w, (y + 0.5) / h])
        labels.append(1)
        r = max(2.0, float(dist[y, x]))  # points at least one inscribed radius apart
        dist[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = 0
    return [[float(a), float(b)] for a, b in pts], labels


def tight_box(mask: np.ndarray) -> np.ndarray:
    """``(x, y, w, h)`` of a non-empty ``(H, W)`` bool mask's tight box, pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], float)
