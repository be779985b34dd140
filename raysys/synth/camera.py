"""Calibrated static pinhole cameras and their colour response.

World frame: metres, ``z`` up, the ground is ``z = 0``, the walkable area is centred at the
origin. A camera maps a world point ``X`` to camera coordinates ``Xc = R @ X + t``
(x right, y down, z forward) and to pixels ``K @ Xc / Xc[2]`` (pixel centres at integer
coordinates, ``(0, 0)`` the top-left pixel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from raysys.synth.config import RigStyle

__all__ = ["Camera", "ColourResponse", "make_rig", "look_at"]


@dataclass(frozen=True)
class ColourResponse:
    """How one camera turns scene radiance (uint8 RGB) into its recorded image.

    Order: white balance and saturation (3x3 matrix) -> optical blur -> gamma -> vignette
    and sensor noise. ``flicker`` wobbles the exposure from frame to frame.
    """

    gains: tuple[float, float, float]   # per-channel gain (white balance x exposure)
    saturation: float                   # 1 = unchanged
    gamma: float                        # output = input ** gamma (on [0, 1])
    noise_sigma: float                  # sensor noise std (8-bit levels)
    blur_sigma: float                   # Gaussian blur std (pixels); 0 = none
    vignette: float                     # brightness loss in the corners (0..1)
    flicker: float                      # frame-to-frame relative exposure std

    def matrix(self, exposure: float = 1.0) -> np.ndarray:
        """(3, 3) RGB -> RGB matrix: gains @ saturation."""
        lum = np.array([0.299, 0.587, 0.114])
        s = self.saturation
        sat = s * np.eye(3) + (1.0 - s) * np.tile(lum, (3, 1))
        return (np.diag(self.gains) * exposure) @ sat

    def apply(self, radiance: np.ndarray, rng: np.random.Generator,
              vignette_map: np.ndarray | None = None) -> np.ndarray:
        """Record one frame: (H, W, 3) uint8 radiance -> (H, W, 3) uint8 RGB."""
        exposure = 1.0 + self.flicker * float(rng.standard_normal())
        img = cv2.transform(radiance, self.matrix(exposure))
        if self.blur_sigma > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), self.blur_sigma)
        lut = np.clip(255.0 * (np.arange(256) / 255.0) ** self.gamma + 0.5, 0, 255)
        img = cv2.LUT(img, lut.astype(np.uint8))
        out = img.astype(np.float32)
        if vignette_map is not None:
            out *= vignette_map[..., None]
        # luminance noise shared by the channels plus weaker chroma noise
        h, w = img.shape[:2]
        out += self.noise_sigma * rng.standard_normal((h, w, 1), dtype=np.float32)
        out += 0.5 * self.noise_sigma * rng.standard_normal((h, w, 3), dtype=np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def vignette_map(self, width: int, height: int) -> np.ndarray:
        """(H, W) float32 brightness factor, 1 at the centre, 1 - vignette in the corners."""
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        r2 = ((x - width / 2) / (width / 2)) ** 2 + ((y - height / 2) / (height / 2)) ** 2
        return (1.0 - self.vignette * r2 / 2.0).astype(np.float32)


@dataclass(frozen=True)
class Camera:
    """A calibrated static pinhole camera (no lens distortion)."""

    name: str                 # "View1", ...
    K: np.ndarray             # (3, 3) intrinsics
    R: np.ndarray             # (3, 3) world -> camera rotation
    t: np.ndarray             # (3,) world -> camera translation
    width: int
    height: int
    response: ColourResponse

    @property
    def centre(self) -> np.ndarray:
        """(3,) camera centre in world coordinates."""
        return -self.R.T @ self.t

    def to_camera(self, X: np.ndarray) -> np.ndarray:
        """(N, 3) world -> (N, 3) camera coordinates."""
        return X @ self.R.T + self.t

    def project(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world points -> ((N, 2) pixels, (N,) depth along the optical axis)."""
        Xc = self.to_camera(np.asarray(X, dtype=np.float64))
        z = Xc[:, 2]
        zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
        uv = (Xc @ self.K.T)[:, :2] / zs[:, None]
        return uv, z

    def pixel_rays(self, scale: int = 1) -> np.ndarray:
        """(H*s, W*s, 3) unit world directions through (sub)pixel centres."""
        h, w = self.height * scale, self.width * scale
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        u = (xs + 0.5) / scale - 0.5
        v = (ys + 0.5) / scale - 0.5
        pix = np.stack([u, v, np.ones_like(u)], axis=-1)
        d = pix @ np.linalg.inv(self.K).T @ self.R    # (K^-1 p) in world: R^T (K^-1 p)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def to_dict(self) -> dict:
        r = self.response
        return {
            "name": self.name, "width": self.width, "height": self.height,
            "K": self.K.tolist(), "R": self.R.tolist(), "t": self.t.tolist(),
            "centre": self.centre.tolist(),
            "colour_response": {
                "gains": list(r.gains), "saturation": r.saturation, "gamma": r.gamma,
                "noise_sigma": r.noise_sigma, "blur_sigma": r.blur_sigma,
                "vignette": r.vignette, "flicker": r.flicker,
            },
        }


def look_at(centre: np.ndarray, target: np.ndarray, roll: float = 0.0
            ) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of a camera at ``centre`` looking at ``target`` (world z up), rolled by
    ``roll`` radians about its optical axis."""
    f = target - centre
    f = f / np.linalg.norm(f)
    right = np.cross(f, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    cr, sr = math.cos(roll), math.sin(roll)
    right, down = cr * right + sr * down, -sr * right + cr * down
    R = np.stack([right, down, f])
    return R, -R @ centre


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def _response(rng: np.random.Generator, style: RigStyle) -> ColourResponse:
    g = style.wb_gain
    exposure = _u(rng, style.exposure)
    # white balance: warm (R up, B down) or cool casts, plus a small independent wobble
    cast = float(rng.uniform(-g, g))
    gains = (exposure * (1 + cast + rng.uniform(-g, g) / 3),
             exposure * (1 + rng.uniform(-g, g) / 4),
             exposure * (1 - cast + rng.uniform(-g, g) / 3))
    return ColourResponse(
        gains=tuple(float(v) for v in gains),
        saturation=_u(rng, style.saturation), gamma=_u(rng, style.gamma),
        noise_sigma=_u(rng, style.noise_sigma), blur_sigma=_u(rng, style.blur_sigma),
        vignette=_u(rng, style.vignette), flicker=style.flicker,
    )


def make_rig(rng: np.random.Generator, style: RigStyle, views: int, width: int,
             height: int) -> list[Camera]:
    """``views`` cameras around the area: View1 high and steep, the others low, at
    roughly evenly spaced azimuths (so View2 and View3 look from opposite-ish sides)."""
    base = float(rng.uniform(0, 2 * math.pi))
    cams = []
    for k in range(views):
        az = base + 2 * math.pi * k / views + math.radians(
            rng.uniform(-style.azimuth_jitter_deg, style.azimuth_jitter_deg))
        if k == 0:
            h = _u(rng, style.high_height)
            dist = 0.75 * _u(rng, style.distance)
        else:
            h = _u(rng, style.side_height)
            dist = _u(rng, style.distance)
        centre = np.array([dist * math.cos(az), dist * math.sin(az), h])
        aim = np.array([*rng.uniform(-style.aim_jitter, style.aim_jitter, 2), 0.6])
        R, t = look_at(centre, aim, roll=math.radians(rng.uniform(-2.5, 2.5)))
        hfov = math.radians(_u(rng, style.hfov_deg))
        f = (width / 2) / math.tan(hfov / 2)
        cx = width / 2 - 0.5 + rng.uniform(-0.02, 0.02) * width
        cy = height / 2 - 0.5 + rng.uniform(-0.02, 0.02) * height
        K = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
        cams.append(Camera(f"View{k + 1}", K, R, t, width, height, _response(rng, style)))
    return cams
