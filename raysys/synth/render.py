"""Render the frames of one camera: shadows, depth-ordered objects, visibility, response.

Per frame: the precomputed background gets the moving objects' ground shadows; objects are
composited far to near (whole-object depth order; static occluders hide them per pixel
through the background's depth map); an owner map records which object each pixel shows,
which gives every object's *visible* mask. An object enters the ground truth of a view
when its visible pixels are at least ``min_visible_fraction`` of its full silhouette
(including the part outside the image) and at least ``min_visible_pixels``. Its GT box is
the full (amodal) silhouette box clipped to the image, so the visible mask lies inside it.
Finally the camera's colour response (white balance, saturation, blur, gamma, vignette,
sensor noise, exposure flicker) turns radiance into the recorded image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from raysys.synth.background import render_background, shadow_offset
from raysys.synth.camera import Camera
from raysys.synth.figures import Figure
from raysys.synth.raster import clip_to_image, rasterize
from raysys.synth.world import World

__all__ = ["ObjectView", "ViewRenderer", "rle_counts"]


@dataclass(frozen=True)
class ObjectView:
    """One object in one frame of one view (only objects whose figure reaches the image)."""

    gid: int
    box: tuple[int, int, int, int]   # amodal silhouette box clipped to the image (l, t, w, h)
    visible_pixels: int
    visible_fraction: float          # visible / full silhouette
    in_image_fraction: float         # silhouette inside the image / full silhouette
    counts: tuple[int, ...] | None   # RLE counts of the visible mask (None when hidden)
    in_gt: bool                      # passes the visibility threshold


def rle_counts(crop: np.ndarray, x0: int, y0: int, width: int, height: int) -> list[int]:
    """COCO uncompressed RLE counts (column-major, starting with zeros) of an
    ``height x width`` mask that is zero except for ``crop`` placed at ``(x0, y0)``.

    Equals ``MaskRLE.encode(full_mask).counts`` but touches only the crop's columns.
    """
    ch, cw = crop.shape
    strip = np.zeros((height, cw), bool)
    strip[y0:y0 + ch] = crop
    flat = strip.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
    if flat[0]:
        runs = [0, *runs]
    runs[0] += x0 * height
    tail = (width - x0 - cw) * height
    if tail:
        if len(runs) % 2 == 1:          # last run is zeros
            runs[-1] += tail
        else:
            runs.append(tail)
    return runs


class ViewRenderer:
    """Renders every frame of one camera; the background is computed once."""

    def __init__(self, world: World, cam: Camera, extent: tuple[float, float],
                 min_visible_fraction: float, min_visible_pixels: int) -> None:
        self.world, self.cam = world, cam
        self.bg, self.static_depth = render_background(world, cam, extent)
        self.ground = np.isinf(self.static_depth)
        self.vignette = cam.response.vignette_map(cam.width, cam.height)
        self.min_fraction = min_visible_fraction
        self.min_pixels = min_visible_pixels
        sun = np.array([math.cos(world.sun_azimuth), math.sin(world.sun_azimuth)])
        self._sun = sun

    def _light(self, fig: Figure) -> float:
        """Brighter when the camera looks at the sunlit side of the figure."""
        d = self.cam.centre[:2] - fig.anchor[:2]
        d = d / max(float(np.hypot(*d)), 1e-6)
        return 0.86 + 0.2 * float(d @ self._sun)

    def _shadows(self, img: np.ndarray, figs: list[Figure]) -> None:
        shade = np.zeros(img.shape[:2], np.uint8)
        for f in figs:
            if f.shadow is None:
                continue
            pts = np.concatenate([f.shadow, f.shadow + shadow_offset(self.world, f.height)])
            uv, z = self.cam.project(pts)
            if z.min() > 0.1:
                hull = cv2.convexHull(np.round(uv * 4).astype(np.int32))
                cv2.fillConvexPoly(shade, hull, 1, cv2.LINE_8, 2)
        m = (shade > 0) & self.ground
        img[m] = (img[m] * 0.64).astype(np.uint8)

    def render(self, objects: list[tuple[int, Figure]], rng: np.random.Generator
               ) -> tuple[np.ndarray, list[ObjectView]]:
        """One frame: ``objects`` are (global id, posed figure). Returns the recorded
        (H, W, 3) uint8 RGB image and the objects whose figure reaches the image."""
        cam = self.cam
        img = self.bg.copy()
        self._shadows(img, [f for _, f in objects])
        drawn = []
        for gid, fig in objects:
            r = rasterize(fig, cam, light=self._light(fig))
            if r is not None and (sl := clip_to_image(r, cam.width, cam.height)) is not None:
                drawn.append((gid, r, sl))
        drawn.sort(key=lambda d: -d[1].depth)                 # far to near
        owner = np.full((cam.height, cam.width), -1, np.int32)
        for k, (_, r, (iy, ix, cy, cx)) in enumerate(drawn):
            m = (r.mask[cy, cx] > 0) & (self.static_depth[iy, ix] > r.depth)
            img[iy, ix][m] = r.rgb[cy, cx][m]
            owner[iy, ix][m] = k
        views = [self._object_view(k, gid, r, sl, owner) for k, (gid, r, sl) in enumerate(drawn)]
        out = cam.response.apply(img, rng, self.vignette)
        return out, views

    def _object_view(self, k: int, gid: int, r, sl, owner: np.ndarray) -> ObjectView:
        iy, ix, cy, cx = sl
        full = int(np.count_nonzero(r.mask))
        crop = r.mask[cy, cx] > 0
        in_image = int(np.count_nonzero(crop))
        vis = owner[iy, ix] == k
        n_vis = int(np.count_nonzero(vis))
        frac = n_vis / max(full, 1)
        in_gt = frac >= self.min_fraction and n_vis >= self.min_pixels and in_image > 0
        box, counts = (0, 0, 0, 0), None
        if in_gt:
            rows, cols = np.flatnonzero(crop.any(1)), np.flatnonzero(crop.any(0))
            box = (int(cols[0] + ix.start), int(rows[0] + iy.start),
                   int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
            counts = tuple(rle_counts(vis, ix.start, iy.start, self.cam.width,
                                      self.cam.height))
        return ObjectView(gid, box, n_vis, frac, in_image / max(full, 1), counts, in_gt)
