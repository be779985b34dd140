"""3-D figures of people, bicycles, cars and static occluders, as lists of drawable parts.

Every figure is built in its own frame - ``a`` forward, ``b`` to its left, ``v`` up, in
metres - from convex pieces (prisms with elliptic cross-sections, ellipsoids, planar faces)
and polylines, then placed in the world. Drawing (``render.py``) projects all points,
sorts parts far-to-near (painter's algorithm) and fills them. Because the pieces are 3-D,
the same person looks different from different sides by construction: an open coat shows
its inner colour only from the front, a backpack shows from behind and the side (straps
from the front), a handbag hangs on one side, the face shows from the front and the hair
from the back, and a person's width changes with the viewing angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raysys.synth.attributes import PersonAttributes
from raysys.synth.world import Occluder

__all__ = ["HULL", "FACE", "LINE", "Figure", "person_figure", "bicycle_figure", "car_figure",
           "occluder_figure"]

HULL, FACE, LINE = 0, 1, 2   # fill the convex hull | fill a planar face (cullable) | polyline
_RING = np.linspace(0, 2 * math.pi, 8, endpoint=False)
_RING16 = np.linspace(0, 2 * math.pi, 16, endpoint=False)
_GLASS = (46, 56, 66)
_TYRE = (24, 24, 26)


@dataclass(frozen=True)
class Part:
    kind: int                    # HULL | FACE | LINE
    start: int                   # rows [start, end) of Figure.pts
    end: int
    rgb: tuple[int, int, int]
    thick: float = 0.0           # LINE width (m)
    closed: bool = False         # LINE: closed polyline
    normal: np.ndarray | None = None   # FACE: outward normal (world); back faces are culled
    bias: float = 0.0            # added to the part's depth when sorting (m; < 0 = nearer)


@dataclass(frozen=True)
class Figure:
    """A posed object: world points, the parts drawn from them, and its ground shadow."""

    pts: np.ndarray              # (N, 3) world points
    parts: tuple[Part, ...]
    anchor: np.ndarray           # (3,) world point whose camera depth orders whole objects
    shadow: np.ndarray | None    # (M, 3) ground points whose hull casts a shadow, or None
    height: float                # metres (for shadow length)


class _Builder:
    """Collects parts in the figure frame and places them in the world."""

    def __init__(self) -> None:
        self.pts: list[np.ndarray] = []
        self.parts: list[tuple] = []
        self.n = 0

    def add(self, kind: int, local: np.ndarray, rgb, thick: float = 0.0, closed: bool = False,
            normal: tuple[float, float, float] | None = None, bias: float = 0.0) -> None:
        local = np.asarray(local, dtype=np.float64).reshape(-1, 3)
        rgb = tuple(int(min(255, max(0, round(c)))) for c in rgb)
        self.parts.append((kind, self.n, self.n + len(local), rgb, thick, closed, normal, bias))
        self.pts.append(local)
        self.n += len(local)

    def build(self, x: float, y: float, heading: float, anchor_v: float,
              shadow_local: np.ndarray | None, height: float) -> Figure:
        c, s = math.cos(heading), math.sin(heading)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])   # (a, b, v) -> world
        off = np.array([x, y, 0.0])
        pts = np.concatenate(self.pts) @ rot.T + off
        parts = tuple(
            Part(k, a, b, rgb, th, cl, None if nrm is None else rot @ np.asarray(nrm), bias)
            for k, a, b, rgb, th, cl, nrm, bias in self.parts)
        shadow = None if shadow_local is None else shadow_local @ rot.T + off
        return Figure(pts, parts, off + (0.0, 0.0, anchor_v), shadow, height)


def _prism(a0, b0, v0, a1, b1, v1, ea, eb, ea1=None, eb1=None, ring=_RING) -> np.ndarray:
    """Points of a prism between two elliptic rings (bottom centre -> top centre)."""
    ea1 = ea if ea1 is None else ea1
    eb1 = eb if eb1 is None else eb1
    ca, sa = np.cos(ring), np.sin(ring)
    bot = np.stack([a0 + ea * ca, b0 + eb * sa, np.full_like(ca, v0)], axis=1)
    top = np.stack([a1 + ea1 * ca, b1 + eb1 * sa, np.full_like(ca, v1)], axis=1)
    return np.concatenate([bot, top])


def _ellipsoid(a, b, v, ea, eb, ev) -> np.ndarray:
    ca, sa = np.cos(_RING), np.sin(_RING)
    rings = [np.stack([a + f * ea * ca, b + f * eb * sa, np.full_like(ca, v + dv * ev)], 1)
             for f, dv in ((0.7, -0.7), (1.0, 0.0), (0.7, 0.7))]
    return np.concatenate([*rings, [[a, b, v - ev], [a, b, v + ev]]])


def _ground_ellipse(ea: float, eb: float) -> np.ndarray:
    return np.stack([ea * np.cos(_RING), eb * np.sin(_RING), np.zeros(8)], axis=1)


def _shade(rgb, f: float) -> tuple[float, float, float]:
    return tuple(c * f for c in rgb)


def _upper_body(bd: _Builder, at: PersonAttributes, H: float, hip: float, lean: float,
                arm_ends: list[tuple[float, float, float]]) -> None:
    """Torso, open-coat strip, arms, neck, head, hair, headwear, bags."""
    k, w = H / 1.75, at.build * H / 1.75
    sh = hip + 0.31 * H                                   # shoulder height

    def la(v: float) -> float:                            # forward lean at height v
        return lean * (v - hip) / (0.31 * H)

    bd.add(HULL, _prism(0, 0, hip - 0.02 * H, la(sh), 0, sh, 0.11 * w, 0.17 * w,
                        0.12 * w, 0.21 * w), at.top_rgb)
    if at.inner is not None:
        bd.add(HULL, _prism(0.115 * w, 0, hip + 0.01 * H, la(sh) + 0.125 * w, 0, sh - 0.01 * H,
                            0.012, 0.065 * w), at.inner_rgb)
    for side, end in zip((1, -1), arm_ends, strict=True):
        s0 = np.array([la(sh), side * 0.21 * w, sh - 0.02 * H])
        bd.add(HULL, _prism(*end, *s0, 0.05 * k, 0.05 * k), _shade(at.top_rgb, 0.93))
        bd.add(HULL, _ellipsoid(end[0], end[1], end[2] - 0.02 * H, 0.04 * k, 0.035 * k,
                                0.035 * k), at.skin_rgb)
    hv = hip + 0.415 * H                                  # head centre
    ha = la(hv)
    bd.add(HULL, _prism(la(sh), 0, sh - 0.02 * H, ha, 0, hip + 0.36 * H, 0.05 * k, 0.05 * k),
           _shade(at.skin_rgb, 0.9))
    bd.add(HULL, _ellipsoid(ha + 0.01, 0, hv, 0.095 * k, 0.085 * k, 0.065 * H), at.skin_rgb)
    bd.add(HULL, _prism(ha + 0.093 * k, 0, hv + 0.004 * H, ha + 0.093 * k, 0, hv + 0.016 * H,
                        0.006, 0.05 * k), (40, 30, 30))                       # eyes
    bd.add(HULL, _ellipsoid(ha - 0.025 * k, 0, hv + 0.016 * H, 0.1 * k, 0.09 * k, 0.06 * H),
           at.hair_rgb)
    if at.long_hair:
        bd.add(HULL, _prism(ha - 0.07 * k, 0, sh - 0.05 * H, ha - 0.05 * k, 0, hv + 0.02 * H,
                            0.05 * k, 0.1 * k), at.hair_rgb)
    if at.headwear == "cap":
        bd.add(HULL, _ellipsoid(ha, 0, hv + 0.05 * H, 0.105 * k, 0.095 * k, 0.035 * H),
               at.headwear_rgb, bias=-0.12)
        bd.add(HULL, _prism(ha + 0.11 * k, 0, hv + 0.027 * H, ha + 0.11 * k, 0, hv + 0.035 * H,
                            0.075 * k, 0.08 * k), _shade(at.headwear_rgb, 0.85), bias=-0.11)
    elif at.headwear == "helmet":
        bd.add(HULL, _ellipsoid(ha - 0.01, 0, hv + 0.04 * H, 0.128 * k, 0.112 * k, 0.055 * H),
               at.headwear_rgb, bias=-0.12)
    if at.bag == "backpack":
        bd.add(HULL, _prism(-0.2 * w + la(hip + 0.05 * H), 0, hip + 0.05 * H,
                            -0.2 * w + la(sh), 0, sh - 0.01 * H, 0.08 * k, 0.15 * w),
               at.bag_rgb)
        for side in (1, -1):
            bd.add(HULL, _prism(0.121 * w, side * 0.1 * w, hip + 0.1 * H, la(sh) + 0.121 * w,
                                side * 0.11 * w, sh, 0.008, 0.022 * k),
                   _shade(at.bag_rgb, 0.8))
    elif at.bag == "handbag":
        side = 1 if at.bag_side == "left" else -1
        b = side * 0.27 * w
        bd.add(HULL, _prism(0.02, b, hip - 0.1 * H, 0.02, b, hip + 0.02 * H, 0.12 * k, 0.045 * k),
               at.bag_rgb)
        bd.add(LINE, [[0.02, b, hip + 0.02 * H], [la(sh), side * 0.17 * w, sh]],
               _shade(at.bag_rgb, 0.7), thick=0.02)


def person_figure(at: PersonAttributes, x: float, y: float, heading: float, phase: float,
                  stride: float) -> Figure:
    """A walking (or standing, ``stride`` = 0) or cycling person."""
    H, k = at.height, at.height / 1.75
    w = at.build * k
    bd = _Builder()
    if at.bicycle:
        hip, lean = 0.95 * k, 0.16 * k
        crank = np.array([0.05, 0.0, 0.3])
        for side, ph in ((1, phase), (-1, phase + math.pi)):
            ped = crank + (0.17 * math.cos(ph), side * 0.11 * w, 0.17 * math.sin(ph))
            knee = ((0.0 + ped[0]) / 2 + 0.24 * k, side * 0.1 * w, (hip + ped[2]) / 2 + 0.08)
            bd.add(HULL, _prism(*knee, 0, side * 0.095 * w, hip, 0.07 * k, 0.07 * k),
                   at.bottom_rgb)
            bd.add(HULL, _prism(*ped, *knee, 0.06 * k, 0.06 * k), _shade(at.bottom_rgb, 0.9))
            bd.add(HULL, _prism(ped[0] + 0.03, ped[1], ped[2] - 0.03, ped[0] + 0.03, ped[1],
                                ped[2] + 0.04, 0.12 * k, 0.05 * k), at.shoes_rgb)
        arms = [(0.42, 0.22 * w, 1.02), (0.42, -0.22 * w, 1.02)]
        _bicycle_parts(bd, at.bicycle_rgb, with_saddle=False)
        _upper_body(bd, at, H, hip, lean, arms)
    else:
        hip = 0.5 * H
        for side, ph in ((1, phase), (-1, phase + math.pi)):
            sw = stride * 0.28 * k * math.sin(ph)
            lift = stride * 0.05 * k * max(0.0, math.sin(ph + math.pi / 2))
            b = side * 0.095 * w
            bd.add(HULL, _prism(sw, b, 0.05 * H + lift, 0, b, hip, 0.07 * k, 0.075 * w,
                                0.08 * k, 0.085 * w), at.bottom_rgb)
            bd.add(HULL, _prism(sw + 0.04, b, lift, sw + 0.03, b, 0.06 * H + lift, 0.13 * k,
                                0.055 * k), at.shoes_rgb)
        if at.long_coat:
            bd.add(HULL, _prism(0, 0, 0.3 * H, 0, 0, hip, 0.15 * w, 0.2 * w, 0.12 * w, 0.18 * w),
                   _shade(at.top_rgb, 0.95), bias=-0.16)
        arms = []
        for side, ph in ((1, phase + math.pi), (-1, phase)):
            sw = stride * 0.2 * k * math.sin(ph)
            arms.append((sw, side * 0.25 * w, 0.48 * H))
        _upper_body(bd, at, H, hip, 0.0, arms)
    shadow = _ground_ellipse(0.9, 0.25) if at.bicycle else _ground_ellipse(0.22 * k, 0.2 * w)
    return bd.build(x, y, heading, 0.55 * H, shadow, H + (0.3 if at.bicycle else 0.0))


def _bicycle_parts(bd: _Builder, rgb, with_saddle: bool) -> None:
    for a in (-0.52, 0.52):
        circle = np.stack([a + 0.34 * np.cos(_RING16), np.zeros(16),
                           0.34 + 0.34 * np.sin(_RING16)], 1)
        bd.add(LINE, circle, _TYRE, thick=0.045, closed=True)
    frame = [[-0.52, 0, 0.34], [0.05, 0, 0.3], [-0.12, 0, 0.88], [-0.52, 0, 0.34]]
    bd.add(LINE, frame, rgb, thick=0.035)
    bd.add(LINE, [[-0.12, 0, 0.88], [0.42, 0, 0.85], [0.05, 0, 0.3]], rgb, thick=0.035)
    bd.add(LINE, [[0.42, 0, 0.85], [0.52, 0, 0.34]], _shade(rgb, 0.8), thick=0.03)
    bd.add(LINE, [[0.42, -0.24, 1.0], [0.42, 0, 0.92], [0.42, 0.24, 1.0]], (40, 40, 40),
           thick=0.025)
    if with_saddle:
        bd.add(HULL, _prism(-0.12, 0, 0.88, -0.1, 0, 0.93, 0.1, 0.05), (30, 30, 30))


def bicycle_figure(rgb, x: float, y: float, heading: float) -> Figure:
    """A parked bicycle (a distractor category)."""
    bd = _Builder()
    _bicycle_parts(bd, rgb, with_saddle=True)
    shadow = np.array([[-0.8, -0.05, 0], [0.8, -0.05, 0], [0.8, 0.05, 0], [-0.8, 0.05, 0]])
    return bd.build(x, y, heading, 0.5, shadow, 1.0)


def _box_faces(bd: _Builder, centre, size, rgb_faces: dict[str, tuple], top_scale: float = 1.0,
               bias: float = 0.0) -> None:
    """Planar faces of an (optionally tapered) box; ``rgb_faces`` keys: side, front, back,
    top (missing keys are not drawn)."""
    a, b, v = centre
    la, lb, h = (s / 2 for s in size)
    bot = [(a - la, b - lb), (a + la, b - lb), (a + la, b + lb), (a - la, b + lb)]
    top = [(a + (x - a) * top_scale, b + (y - b) * top_scale) for x, y in bot]
    B = [(x, y, v - h) for x, y in bot]
    T = [(x, y, v + h) for x, y in top]
    faces = {"back": ([B[0], B[3], T[3], T[0]], (-1, 0, 0)),
             "front": ([B[1], B[2], T[2], T[1]], (1, 0, 0)),
             "side": None, "top": (T, (0, 0, 1))}
    for key, (pts, nrm) in ((k, f) for k, f in faces.items() if f is not None):
        if key in rgb_faces:
            bd.add(FACE, pts, rgb_faces[key], normal=nrm, bias=bias)
    if "side" in rgb_faces:
        bd.add(FACE, [B[0], B[1], T[1], T[0]], rgb_faces["side"], normal=(0, -1, 0), bias=bias)
        bd.add(FACE, [B[3], B[2], T[2], T[3]], rgb_faces["side"], normal=(0, 1, 0), bias=bias)


def car_figure(rgb, x: float, y: float, heading: float) -> Figure:
    """A car: lower body, glass cabin, wheels and lights."""
    bd = _Builder()
    wheel = np.stack([0.33 * np.cos(_RING16), np.zeros(16), 0.33 + 0.33 * np.sin(_RING16)], 1)
    for a in (-1.35, 1.35):
        for b in (-0.86, 0.86):
            # drawn after the body faces on the near side, hidden behind it on the far side
            bd.add(HULL, wheel + (a, b, 0), _TYRE, bias=-0.2)
    _box_faces(bd, (0, 0, 0.62), (4.3, 1.8, 0.68),
               {"side": rgb, "front": _shade(rgb, 0.85), "back": _shade(rgb, 0.8),
                "top": _shade(rgb, 1.1)}, bias=-0.05)
    _box_faces(bd, (-0.25, 0, 1.21), (2.3, 1.6, 0.5),
               {"side": _GLASS, "front": _GLASS, "back": _GLASS, "top": _shade(rgb, 1.05)},
               top_scale=0.85, bias=-0.05)
    for b in (-0.6, 0.6):
        bd.add(FACE, [(2.151, b - 0.18, 0.7), (2.151, b + 0.18, 0.7), (2.151, b + 0.18, 0.82),
                      (2.151, b - 0.18, 0.82)], (235, 230, 200), normal=(1, 0, 0), bias=-0.3)
        bd.add(FACE, [(-2.151, b - 0.18, 0.72), (-2.151, b + 0.18, 0.72),
                      (-2.151, b + 0.18, 0.84), (-2.151, b - 0.18, 0.84)], (170, 20, 20),
               normal=(-1, 0, 0), bias=-0.3)
    shadow = np.array([[-2.3, -1.0, 0], [2.3, -1.0, 0], [2.3, 1.0, 0], [-2.3, 1.0, 0]])
    return bd.build(x, y, heading, 0.75, shadow, 1.46)


def occluder_figure(o: Occluder) -> Figure:
    """A static occluder (part of the background)."""
    bd = _Builder()
    rgb = o.rgb
    if o.kind == "tree":
        trunk_r, crown_r, h = o.size
        bd.add(HULL, _prism(0, 0, 0, 0, 0, h, trunk_r, trunk_r, trunk_r * 0.7, trunk_r * 0.7),
               rgb)
        for da, db, dv, f, g in ((0, 0, 0, 1.0, (58, 98, 46)), (0.35, 0.2, 0.45, 0.7,
                                                                (72, 116, 52))):
            bd.add(HULL, _ellipsoid(da * crown_r, db * crown_r, h + dv * crown_r, f * crown_r,
                                    f * crown_r, 0.85 * f * crown_r), g, bias=-0.01 * dv)
        height = h + crown_r
    else:
        ln, wd, h = o.size
        faces = {"side": rgb, "front": _shade(rgb, 0.85), "back": _shade(rgb, 0.75),
                 "top": _shade(rgb, 1.15)}
        _box_faces(bd, (0, 0, h / 2), (ln, wd, h), faces)
        if o.kind == "kiosk":
            _box_faces(bd, (0, 0, h * 0.62), (ln + 0.02, wd + 0.02, h * 0.3),
                       {"side": (60, 70, 80), "front": (70, 80, 90)}, bias=-0.01)
        if o.kind == "planter":
            _box_faces(bd, (0, 0, h + 0.15), (ln * 0.9, wd * 0.8, 0.3),
                       {"side": (60, 110, 50), "front": (60, 110, 50), "back": (50, 95, 45),
                        "top": (70, 125, 55)}, top_scale=0.8, bias=-0.01)
        height = h
    r = o.radius - 0.3
    shadow = _ground_ellipse(r, r) if o.kind == "tree" else _ground_ellipse(r * 0.8, r * 0.5)
    return bd.build(o.x, o.y, o.yaw, height / 2, shadow, height)
