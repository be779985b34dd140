"""The 3-D world of one scene: ground area, static occluders, people, cars, bicycles, and
how everything moves over the video.

People walk varied paths at varied speeds, stop and stand (hard for background
subtraction), turn around while standing, walk out of the area and sometimes come back
(re-entries keep their global id). Riders are fast. Cars drive through on a road along
one edge of the area or stay parked; bicycles stand parked. All of it is planned once,
frame by frame, independent of the cameras.

A rider's bicycle belongs to the rider (one object of category "person"; its box and mask
include the bicycle); the "bicycle" category is parked bicycles only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raysys.synth.attributes import PersonAttributes, colour_rgb, sample_people
from raysys.synth.config import RigStyle, SynthConfig

__all__ = ["Occluder", "Track", "WorldObject", "World", "make_world"]


@dataclass(frozen=True)
class Occluder:
    """A static object that is part of the background and hides what is behind it."""

    kind: str                           # "pillar" | "tree" | "kiosk" | "planter"
    x: float
    y: float
    size: tuple[float, float, float]    # length, width, height (m); trees: trunk r, crown r, h
    yaw: float                          # radians
    rgb: tuple[int, int, int]

    @property
    def radius(self) -> float:
        """Radius of a circle around the footprint (for walkers to keep out of)."""
        if self.kind == "tree":
            return self.size[0] + 0.35
        return 0.5 * math.hypot(self.size[0], self.size[1]) + 0.3


@dataclass(frozen=True)
class Track:
    """Per-frame state (index 0 = frame 1), each array of shape (T,)."""

    present: np.ndarray    # bool: in the world this frame
    x: np.ndarray          # ground position (m)
    y: np.ndarray
    heading: np.ndarray    # radians, direction the object faces
    phase: np.ndarray      # gait / pedalling phase (radians)
    stride: np.ndarray     # 0 standing .. 1 walking (limb swing amplitude)


@dataclass(frozen=True)
class WorldObject:
    gid: int                                 # global id, the same in every view
    category: str                            # "person" | "car" | "bicycle"
    track: Track
    attributes: PersonAttributes | None = None   # people only
    rgb: tuple[int, int, int] = (0, 0, 0)       # body colour of cars and parked bicycles
    colour: str | None = None                    # its name


@dataclass(frozen=True)
class World:
    theme: str                               # ground look: "Plaza" | "Garden" | "Parking"
    area: tuple[float, float]                # walkable area width, depth (m)
    road_y: float                            # centre line of the road (m)
    sun_azimuth: float                       # radians
    sun_elevation: float                     # radians
    occluders: tuple[Occluder, ...]
    objects: tuple[WorldObject, ...]
    ground_seed: int                         # seeds the procedural ground texture


_OCC_RGB = {"pillar": (150, 146, 138), "kiosk": (176, 120, 70), "planter": (120, 110, 100),
            "tree": (80, 60, 40)}


def _occluders(rng: np.random.Generator, n: int, area: tuple[float, float]) -> list[Occluder]:
    out: list[Occluder] = []
    hw, hd = area[0] / 2, area[1] / 2
    for _ in range(50 * n):
        if len(out) == n:
            break
        kind = str(rng.choice(["pillar", "tree", "kiosk", "planter"], p=[0.3, 0.3, 0.2, 0.2]))
        x, y = rng.uniform(-hw * 0.85, hw * 0.85), rng.uniform(-hd * 0.85, hd * 0.85)
        if any(math.hypot(x - o.x, y - o.y) < 4.0 for o in out):
            continue
        size = {"pillar": (0.6, 0.6, rng.uniform(2.8, 3.6)),
                "tree": (rng.uniform(0.12, 0.2), rng.uniform(1.0, 1.5), rng.uniform(2.8, 3.4)),
                "kiosk": (rng.uniform(1.8, 2.6), rng.uniform(1.2, 1.6), rng.uniform(2.1, 2.5)),
                "planter": (rng.uniform(1.6, 2.6), rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.9))
                }[kind]
        base = np.array(_OCC_RGB[kind]) + rng.integers(-15, 16, 3)
        out.append(Occluder(kind, float(x), float(y), tuple(float(s) for s in size),
                            float(rng.uniform(0, math.pi)),
                            tuple(int(v) for v in np.clip(base, 0, 255))))
    return out


def _edge_point(rng: np.random.Generator, hw: float, hd: float) -> np.ndarray:
    """A random point on the rectangle of half sizes (hw, hd)."""
    s = rng.uniform(0, 4)
    side, f = int(s), s - int(s)
    if side == 0:
        return np.array([-hw + 2 * hw * f, -hd])
    if side == 1:
        return np.array([hw, -hd + 2 * hd * f])
    if side == 2:
        return np.array([hw - 2 * hw * f, hd])
    return np.array([-hw, hd - 2 * hd * f])


def _push_out(p: np.ndarray, occ: list[Occluder]) -> np.ndarray:
    for o in occ:
        d = p - (o.x, o.y)
        r = float(np.hypot(*d))
        if r < o.radius:
            p = np.array([o.x, o.y]) + d / max(r, 1e-6) * o.radius
    return p


class _Walker:
    """State machine of one person: walk to waypoints, stand (and maybe turn), walk out of
    the area and either stay away or come back later."""

    def __init__(self, rng: np.random.Generator, dt: float, area: tuple[float, float],
                 occ: list[Occluder], rider: bool, height: float) -> None:
        self.rng, self.dt, self.occ, self.rider = rng, dt, occ, rider
        self.hw, self.hd = area[0] / 2, area[1] / 2
        self.out = (self.hw + 3.5, self.hd + 3.5)         # beyond the cameras' interest
        self.v0 = rng.uniform(2.5, 4.5) if rider else rng.uniform(0.6, 1.7)
        self.cycle = 2.2 if rider else 1.45 * height / 1.75   # metres per gait cycle
        self.p = np.zeros(2)
        self.heading = rng.uniform(-math.pi, math.pi)
        self.phase, self.stride = rng.uniform(0, 2 * math.pi), 0.0
        self.mode, self.wait, self.target = "walk", 0, None
        self.speed, self.exiting, self.want_heading = self.v0, False, self.heading

    def _inside(self) -> np.ndarray:
        return np.array([self.rng.uniform(-self.hw, self.hw), self.rng.uniform(-self.hd, self.hd)])

    def _arrive(self) -> None:
        rng, dt = self.rng, self.dt
        self.target = None
        if self.exiting:
            self.mode, self.wait = "away", int(rng.integers(int(2 / dt), int(8 / dt) + 1))
            if rng.random() < 0.6:
                self.mode = "gone"
        elif rng.random() < (0.08 if self.rider else 0.3):
            self.mode, self.wait = "stand", int(rng.integers(int(1 / dt), int(5 / dt) + 1))
            if rng.random() < 0.5:
                self.want_heading = rng.uniform(-math.pi, math.pi)

    def step(self) -> bool:
        """Advance one frame; returns whether the person is in the world this frame."""
        if self.mode == "away":
            self.wait -= 1
            if self.wait <= 0:
                self.mode, self.p, self.target = "walk", _edge_point(self.rng, *self.out), None
            return False
        if self.mode == "stand":
            self.stride = max(0.0, self.stride - 0.34)
            self.heading = _turn(self.heading, self.want_heading, 0.15)
            self.wait -= 1
            if self.wait <= 0:
                self.mode = "walk"
            return True
        if self.target is None:
            self.exiting = bool(self.rng.random() < 0.2)
            self.target = _edge_point(self.rng, *self.out) if self.exiting else self._inside()
            self.speed = self.v0 * self.rng.uniform(0.85, 1.15)
        d = self.target - self.p
        dist = float(np.hypot(*d))
        step = min(dist, self.speed * self.dt)
        if dist > 1e-6:
            self.heading = _turn(self.heading, math.atan2(d[1], d[0]), 0.6)
        self.want_heading = self.heading
        self.p = _push_out(self.p + d / max(dist, 1e-9) * step, self.occ)
        self.phase += 2 * math.pi * step / self.cycle
        self.stride = min(1.0, self.stride + 0.34)
        if dist - step < 0.05:
            self._arrive()
        return self.mode != "gone"


def _person_track(rng: np.random.Generator, T: int, dt: float, area: tuple[float, float],
                  occ: list[Occluder], rider: bool, height: float) -> Track:
    """Walk / stand / leave / re-enter, frame by frame: about half the people are in the
    area at frame 1, the others enter later from outside."""
    w = _Walker(rng, dt, area, occ, rider, height)
    arr = {k: np.zeros(T) for k in ("x", "y", "heading", "phase", "stride")}
    present = np.zeros(T, dtype=bool)
    if rng.random() < 0.55:
        start, w.p = 0, w._inside()
    else:
        start, w.p = int(rng.integers(0, max(1, int(0.6 * T)))), _edge_point(rng, *w.out)
    for t in range(start, T):
        present[t] = w.step()
        if w.mode == "gone":
            break
        arr["x"][t], arr["y"][t], arr["heading"][t] = w.p[0], w.p[1], w.heading
        arr["phase"][t], arr["stride"][t] = w.phase, w.stride
    return Track(present=present, **arr)


def _turn(a: float, b: float, max_step: float) -> float:
    d = (b - a + math.pi) % (2 * math.pi) - math.pi
    return a + max(-max_step, min(max_step, d))


def _car_track(rng: np.random.Generator, T: int, dt: float, area: tuple[float, float],
               road_y: float, parked: bool) -> Track:
    hw = area[0] / 2 + 8.0
    z = np.zeros(T)
    if parked:
        x = rng.uniform(-area[0] / 2, area[0] / 2)
        side = math.copysign(1.0, road_y)
        y = road_y - side * 2.6 if rng.random() < 0.5 else road_y + side * 2.6
        return Track(np.ones(T, bool), z + x, z + y, z + rng.choice([0.0, math.pi]), z, z)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    lane = road_y - direction * 1.0 * math.copysign(1.0, road_y)
    speed = rng.uniform(3.0, 7.0)
    t0 = int(rng.integers(0, max(1, T // 2)))
    tt = np.arange(T) - t0
    x = direction * (-hw + speed * dt * tt)
    present = (tt >= 0) & (np.abs(x) <= hw)
    return Track(present, x, z + lane, z + (0.0 if direction > 0 else math.pi), z, z)


def _static_track(T: int, x: float, y: float, heading: float) -> Track:
    z = np.zeros(T)
    return Track(np.ones(T, bool), z + x, z + y, z + heading, z, z)


def make_world(rng: np.random.Generator, cfg: SynthConfig, style: RigStyle, theme: str
               ) -> World:
    """Sample one scene's world (everything but the cameras)."""
    T, dt, area = cfg.frames, 1.0 / cfg.fps, style.area
    occ = _occluders(rng, cfg.occluders, area)
    road_y = float(rng.choice([-1.0, 1.0]) * (area[1] / 2 + 1.6))
    objects: list[WorldObject] = []
    for a in sample_people(rng, cfg.people):
        objects.append(WorldObject(
            len(objects) + 1, "person",
            _person_track(rng, T, dt, area, occ, a.bicycle, a.height), attributes=a))
    for _ in range(cfg.cars):
        name = str(rng.choice(["black", "white", "gray", "red", "blue", "silver"]))
        rgb = colour_rgb(rng, "gray" if name == "silver" else name, 12)
        track = _car_track(rng, T, dt, area, road_y, parked=bool(rng.random() < 0.4))
        objects.append(WorldObject(len(objects) + 1, "car", track, rgb=rgb, colour=name))
    hw, hd = area[0] / 2, area[1] / 2
    for _ in range(cfg.bicycles):
        name = str(rng.choice(["black", "red", "blue", "white", "green"]))
        for _try in range(20):
            p = np.array([rng.uniform(-hw, hw), rng.uniform(-hd, hd)])
            if all(np.hypot(*(p - (o.x, o.y))) > o.radius + 0.6 for o in occ):
                break
        track = _static_track(T, float(p[0]), float(p[1]), float(rng.uniform(0, 2 * math.pi)))
        objects.append(WorldObject(len(objects) + 1, "bicycle", track,
                                   rgb=colour_rgb(rng, name, 12), colour=name))
    return World(theme=theme, area=area, road_y=road_y,
                 sun_azimuth=float(rng.uniform(0, 2 * math.pi)),
                 sun_elevation=float(math.radians(rng.uniform(32, 62))),
                 occluders=tuple(occ), objects=tuple(objects),
                 ground_seed=int(rng.integers(2**31)))
