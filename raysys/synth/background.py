"""Static background of one camera: textured ground, building facades, sky, occluders.

The ground texture is a procedural function of world ``(X, Y)`` (tiles, grass, asphalt,
painted lines, stains), evaluated on every camera ray's ground hit with 2x2 supersampling,
so all cameras of a scene see the same ground, consistently with their calibration.
A ring of building facades closes the world; the sky fills the rest. Static occluders are
drawn last and leave a depth map, so moving objects behind them get hidden per pixel.
Everything here is computed once per camera; frames are composited onto it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from raysys.synth.camera import Camera
from raysys.synth.figures import occluder_figure
from raysys.synth.raster import draw_static
from raysys.synth.world import World

__all__ = ["render_background", "world_extent", "shadow_offset"]

_L = 64   # lattice size of the value noise


def world_extent(world: World, cameras: list[Camera]) -> tuple[float, float]:
    """Half sizes (x, y) of the rectangle of facades: beyond the area and every camera."""
    cx = max(abs(float(c.centre[0])) for c in cameras)
    cy = max(abs(float(c.centre[1])) for c in cameras)
    return (max(world.area[0] / 2 + 14.0, cx + 5.0), max(world.area[1] / 2 + 14.0, cy + 5.0))


def shadow_offset(world: World, height: float) -> np.ndarray:
    """Ground displacement (x, y, 0) of the shadow of a point ``height`` metres up."""
    length = height / math.tan(world.sun_elevation)
    return -length * np.array([math.cos(world.sun_azimuth), math.sin(world.sun_azimuth), 0.0])


class _Noise:
    """Value noise and per-cell hashes from one random lattice (deterministic per scene)."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.g = rng.random((4, _L, _L))

    def cell(self, i: np.ndarray, j: np.ndarray, ch: int = 0) -> np.ndarray:
        return self.g[ch, np.mod(i, _L), np.mod(j, _L)]

    def smooth(self, x: np.ndarray, y: np.ndarray, scale: float, ch: int = 1) -> np.ndarray:
        u, v = x / scale, y / scale
        i, j = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        fu, fv = u - i, v - j
        fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
        a, b = self.cell(i, j, ch), self.cell(i + 1, j, ch)
        c, d = self.cell(i, j + 1, ch), self.cell(i + 1, j + 1, ch)
        return (a * (1 - fu) + b * fu) * (1 - fv) + (c * (1 - fu) + d * fu) * fv

    def fbm(self, x: np.ndarray, y: np.ndarray, scale: float) -> np.ndarray:
        """Fractal noise in about [-0.5, 0.5]."""
        return (0.5 * self.smooth(x, y, scale, 1) + 0.3 * self.smooth(x, y, scale / 3, 2)
                + 0.2 * self.smooth(x, y, scale / 9, 3)) - 0.5


def _tiles(nz: _Noise, x, y, size: float, base: np.ndarray, grout: float) -> np.ndarray:
    """Square paving of side ``size`` with per-tile brightness and dark grout lines."""
    i, j = np.floor(x / size).astype(np.int64), np.floor(y / size).astype(np.int64)
    shade = 0.88 + 0.24 * nz.cell(i, j, 0)
    fx, fy = x / size - i, y / size - j
    g = np.minimum(np.minimum(fx, 1 - fx), np.minimum(fy, 1 - fy)) * size < grout
    out = base[None] * shade[:, None]
    out[g] *= 0.62
    return out


def _ground_rgb(world: World, nz: _Noise, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, 3) float radiance of the ground at world points."""
    hw, hd = world.area[0] / 2, world.area[1] / 2
    tint = 0.85 + 0.3 * nz.g[0, 0, :3]
    stain = 1.0 + 0.35 * nz.fbm(x, y, 6.0)
    if world.theme == "Garden":
        grass = np.array([70.0, 118.0, 52.0]) * (1.0 + 0.8 * nz.fbm(x, y, 0.7))[:, None]
        path = (np.abs(y - 0.2 * hd) < 1.6) | (np.abs(x + 0.3 * hw) < 1.4) | (
            np.hypot(x, y) < 0.45 * min(hw, hd))
        gravel = np.array([178.0, 164.0, 138.0]) * (1 + 0.25 * nz.fbm(x, y, 0.15))[:, None]
        rgb = np.where(path[:, None], gravel, grass)
    elif world.theme == "Parking":
        rgb = np.array([92.0, 94.0, 98.0]) * (1 + 0.3 * nz.fbm(x, y, 0.3))[:, None]
        fx = np.mod(x, 2.7)
        bay = (fx < 0.12) & (np.abs(np.abs(y) - 0.5 * hd) < 2.4)
        rgb[bay] = (215, 215, 205)
        walk = np.abs(y) < 1.2
        rgb[walk] = _tiles(nz, x[walk], y[walk], 0.5, np.array([170.0, 150.0, 130.0]), 0.025)
    else:
        base = np.array([176.0, 166.0, 150.0]) * tint
        size = 0.55 + 0.4 * nz.g[1, 0, 0]
        rgb = _tiles(nz, x, y, size, base, 0.03)
        ring = np.abs(np.hypot(x, y) - 0.55 * min(hw, hd)) < 0.5
        rgb[ring] *= 0.7
    road = np.abs(y - world.road_y) < 3.2
    asphalt = np.array([70.0, 72.0, 76.0]) * (1 + 0.25 * nz.fbm(x, y, 0.2))[:, None]
    rgb = np.where(road[:, None], asphalt, rgb)
    dash = road & (np.abs(y - world.road_y) < 0.08) & (np.mod(x, 4.0) < 2.0)
    kerb = np.abs(np.abs(y - world.road_y) - 3.2) < 0.12
    rgb[dash] = (220, 215, 180)
    rgb[kerb] = (190, 190, 185)
    return rgb * stain[:, None]


def _facade_rgb(nz: _Noise, q: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Building fronts along the perimeter coordinate ``q`` (m), height ``z`` (m)."""
    seg = np.floor(q / 11.0).astype(np.int64)
    base = np.stack([nz.cell(seg, 3, c) for c in range(3)], -1) * 120 + 90
    win = (np.mod(q, 2.4) > 0.7) & (np.mod(q, 2.4) < 1.9) & (np.mod(z, 3.0) > 1.0) & (
        np.mod(z, 3.0) < 2.3) & (z > 2.5)
    out = base * (0.9 + 0.1 * nz.smooth(q, z, 0.8, 2))[:, None]
    out[win] = np.array([60.0, 72.0, 88.0]) + 40 * nz.cell(np.floor(q[win] / 2.4).astype(
        np.int64), np.floor(z[win] / 3).astype(np.int64), 1)[:, None]
    return out


def _scene_rgb(world: World, cam: Camera, extent: tuple[float, float], ss: int) -> np.ndarray:
    """(H*ss, W*ss, 3) float radiance of ground, facades and sky along every ray."""
    nz = _Noise(world.ground_seed)
    d = cam.pixel_rays(ss)
    h, w = d.shape[:2]
    d = d.reshape(-1, 3)
    c = cam.centre
    ex, ey = extent
    with np.errstate(divide="ignore", invalid="ignore"):
        sx = np.where(np.abs(d[:, 0]) > 1e-9, (np.sign(d[:, 0]) * ex - c[0]) / d[:, 0], np.inf)
        sy = np.where(np.abs(d[:, 1]) > 1e-9, (np.sign(d[:, 1]) * ey - c[1]) / d[:, 1], np.inf)
        sw = np.minimum(sx, sy)                            # ray leaves the facade rectangle
        sg = np.where(d[:, 2] < -1e-9, -c[2] / d[:, 2], np.inf)
    out = np.zeros((d.shape[0], 3))
    ground = sg < sw
    p = c + sg[ground, None] * d[ground]
    out[ground] = _ground_rgb(world, nz, p[:, 0], p[:, 1])
    rest = ~ground
    hit = c + sw[rest, None] * d[rest]
    # perimeter coordinate of the wall hit, then the building height there
    q = np.where(np.abs(np.abs(hit[:, 0]) - ex) < 1e-6, hit[:, 1] + 3 * ey * np.sign(hit[:, 0]),
                 hit[:, 0] + 7 * ex * np.sign(hit[:, 1]))
    bh = 6.0 + 16.0 * nz.cell(np.floor(q / 11.0).astype(np.int64), 5, 2)
    facade = hit[:, 2] < bh
    rgb = np.empty((hit.shape[0], 3))
    rgb[facade] = _facade_rgb(nz, q[facade], hit[facade, 2])
    elev = np.clip(d[rest][~facade, 2], 0, 1)[:, None]
    rgb[~facade] = (1 - elev) * np.array([214.0, 224.0, 236.0]) + elev * np.array(
        [120.0, 160.0, 215.0])
    out[rest] = rgb
    return out.reshape(h, w, 3)


def render_background(world: World, cam: Camera, extent: tuple[float, float],
                      ss: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """One camera's static background.

    Args:
        world: the scene.
        cam: the camera.
        extent: facade rectangle half sizes (:func:`world_extent`, the same for all views).
        ss: supersampling factor of the ground/facade texture.

    Returns:
        (H, W, 3) uint8 radiance and (H, W) float32 depth of static occluders (inf where
        there are none).
    """
    rgb = _scene_rgb(world, cam, extent, ss).astype(np.float32)
    rgb = cv2.resize(rgb, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    img = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    depth = np.full((cam.height, cam.width), np.inf, dtype=np.float32)
    figs = [occluder_figure(o) for o in world.occluders]
    shade = np.zeros((cam.height, cam.width), np.uint8)
    for f in figs:
        pts = np.concatenate([f.shadow, f.shadow + shadow_offset(world, f.height)])
        uv, z = cam.project(pts)
        if np.all(z > 0.1):
            cv2.fillConvexPoly(shade, cv2.convexHull(np.round(uv * 4).astype(np.int32)), 1,
                               cv2.LINE_8, 2)
    img[shade > 0] = (img[shade > 0] * 0.62).astype(np.uint8)
    draw_static(img, depth, figs, cam)
    return img, depth
