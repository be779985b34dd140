"""Rasterise a :class:`~raysys.synth.figures.Figure` seen by a camera into a small crop.

All points of a figure are projected at once; parts are drawn far-to-near (painter's
algorithm on each part's mean camera depth plus its bias) with sub-pixel precision
(``cv2`` ``shift``), into an RGB crop and a mask crop covering the *whole* projected
figure, also where it leaves the image: the mask's pixel count is the full silhouette
area that visibility fractions are measured against.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from raysys.synth.camera import Camera
from raysys.synth.figures import FACE, HULL, Figure

__all__ = ["Raster", "rasterize", "clip_to_image", "draw_static", "NEAR"]

NEAR = 0.5           # m: a figure with a point closer to the camera than this is not drawn
_SHIFT = 4           # fractional bits of the cv2 drawing coordinates
_MUL = 1 << _SHIFT


@dataclass(frozen=True)
class Raster:
    """A drawn figure: crop top-left ``(x0, y0)`` in image pixels, RGB and mask crops."""

    x0: int
    y0: int
    rgb: np.ndarray       # (h, w, 3) uint8
    mask: np.ndarray      # (h, w) uint8, 255 inside
    depth: float          # camera depth of the figure's anchor (orders whole objects)


def _colour(rgb: tuple[int, int, int], light: float) -> tuple[int, int, int]:
    return tuple(min(255, int(c * light)) for c in rgb)


def rasterize(fig: Figure, cam: Camera, light: float = 1.0, outline: bool = True,
              max_area: int | None = None) -> Raster | None:
    """Draw ``fig`` as seen by ``cam``.

    Args:
        fig: the posed figure.
        cam: the camera.
        light: brightness factor of this view of the figure (lit vs shaded side).
        outline: darken part borders (garment seams) when the figure is large enough.
        max_area: crops larger than this many pixels are not drawn (figure too close);
            default 4x the image.

    Returns:
        The raster, or None when the figure is behind/too close to the camera or entirely
        outside the image.
    """
    uv, z = cam.project(fig.pts)
    if z.min() < NEAR:
        return None
    lo = np.floor(uv.min(0)).astype(int) - 1
    hi = np.ceil(uv.max(0)).astype(int) + 1
    if hi[0] < 0 or hi[1] < 0 or lo[0] >= cam.width or lo[1] >= cam.height:
        return None
    w, h = int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1)
    if w * h > (max_area or 4 * cam.width * cam.height):
        return None
    rgb = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    pts = np.round((uv - lo) * _MUL).astype(np.int32)
    starts = np.array([p.start for p in fig.parts])
    depth = np.add.reduceat(z, starts) / np.diff(np.append(starts, len(z)))
    depth += np.array([p.bias for p in fig.parts])
    f = cam.K[0, 0]
    seams = outline and h > 48
    centre = cam.centre
    for i in np.argsort(-depth, kind="stable"):
        part = fig.parts[i]
        p = pts[part.start:part.end]
        col = _colour(part.rgb, light)
        if part.kind == HULL or part.kind == FACE:
            if part.kind == FACE:
                if part.normal is not None and float(
                        part.normal @ (centre - fig.pts[part.start:part.end].mean(0))) <= 0:
                    continue
                poly = p
            else:
                poly = cv2.convexHull(p)
            cv2.fillConvexPoly(rgb, poly, col, cv2.LINE_8, _SHIFT)
            cv2.fillConvexPoly(mask, poly, 255, cv2.LINE_8, _SHIFT)
            if seams:
                dark = _colour(col, 0.72)
                cv2.polylines(rgb, [poly], True, dark, 1, cv2.LINE_8, _SHIFT)
                cv2.polylines(mask, [poly], True, 255, 1, cv2.LINE_8, _SHIFT)
        else:
            th = max(1, round(part.thick * f / max(depth[i], NEAR)))
            cv2.polylines(rgb, [p], part.closed, col, th, cv2.LINE_8, _SHIFT)
            cv2.polylines(mask, [p], part.closed, 255, th, cv2.LINE_8, _SHIFT)
    anchor_z = float(cam.to_camera(fig.anchor[None])[0, 2])
    return Raster(int(lo[0]), int(lo[1]), rgb, mask, anchor_z)


def clip_to_image(r: Raster, width: int, height: int
                  ) -> tuple[slice, slice, slice, slice] | None:
    """(image rows, image cols, crop rows, crop cols) of the part of ``r`` inside the
    image, or None if none is."""
    h, w = r.mask.shape
    x0, y0 = max(r.x0, 0), max(r.y0, 0)
    x1, y1 = min(r.x0 + w, width), min(r.y0 + h, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return (slice(y0, y1), slice(x0, x1), slice(y0 - r.y0, y1 - r.y0),
            slice(x0 - r.x0, x1 - r.x0))


def draw_static(img: np.ndarray, depth: np.ndarray, figs: list[Figure], cam: Camera) -> None:
    """Paint static figures into a background image and its depth map, far to near."""
    rasters = [r for f in figs if (r := rasterize(f, cam)) is not None]
    for r in sorted(rasters, key=lambda r: -r.depth):
        sl = clip_to_image(r, cam.width, cam.height)
        if sl is None:
            continue
        iy, ix, cy, cx = sl
        m = r.mask[cy, cx] > 0
        img[iy, ix][m] = r.rgb[cy, cx][m]
        depth[iy, ix][m] = np.minimum(depth[iy, ix][m], r.depth)
