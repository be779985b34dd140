"""Configuration of the synthetic multi-camera CRMOT benchmark.

One frozen :class:`SynthConfig` describes a whole dataset; :class:`RigStyle` describes how
one domain places and tints its cameras. The defaults are the benchmark every report
measures (8 scenes of 20 people and 12 expressions each, with statistics like CRTrack's:
issue #20; about a minute and a half on one core). The CLI only overrides fields, and
:mod:`raysys.config` reads and writes it (``from_dict`` / ``to_dict``). ``In-domain`` and
``Cross-domain`` differ the way CRTrack's do: other scenes, other camera layouts (number of
views, heights, focal lengths) and other colour responses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["RigStyle", "SynthConfig", "IN_DOMAIN_RIG", "CROSS_DOMAIN_RIG", "DOMAIN_ALIASES",
           "LIMITS", "SynthLimitError", "check_limits"]

# What one dataset may hold unless the limits are lifted (`raysys synth --allow-large`,
# ``generate(..., allow_large=True)``): a typo such as --frames 10000000 or --size
# 100000x100000 would otherwise fill the memory or the disk before it failed. The defaults
# are far below (640x360, 60 frames, 3-4 views, 1,680 images).
LIMITS = {
    "side": 4096,        # frame width and height (px); CRTrack's frames are 1920x1080
    "frames": 10_000,    # frames per view
    "views": 32,         # cameras per scene (--views, --cross-views)
    "objects": 1_000,    # people + cars + bicycles per scene
    "images": 200_000,   # frames over all views, scenes, splits and domains
}

Range = tuple[float, float]

# CLI spellings of the two domains
DOMAIN_ALIASES = {"in": "In-domain", "cross": "Cross-domain",
                  "in-domain": "In-domain", "cross-domain": "Cross-domain"}


@dataclass(frozen=True)
class RigStyle:
    """Scene themes, camera layout and colour response of one domain.

    Ranges are ``(low, high)`` and sampled uniformly per scene or per camera.
    Camera 1 of every scene is the high, overhead-ish one; the others stand low around
    the area at roughly evenly spaced azimuths, so the views really differ.
    """

    themes: tuple[str, ...] = ("Plaza",)      # scene name stems (ground look), cycled
    area: tuple[float, float] = (17.0, 12.0)  # walkable area width x depth (m), centred at 0
    high_height: Range = (8.0, 10.5)          # height (m) of the overhead-ish camera
    side_height: Range = (2.6, 4.2)           # height (m) of the other cameras
    distance: Range = (12.5, 16.0)            # ground distance (m) camera -> area centre
    hfov_deg: Range = (60.0, 76.0)            # horizontal field of view (degrees)
    azimuth_jitter_deg: float = 18.0          # jitter around evenly spaced azimuths
    aim_jitter: float = 2.0                   # look-at point offset from centre (m)
    wb_gain: float = 0.14                     # max relative change of the R and B gains
    exposure: Range = (0.85, 1.15)            # global gain
    gamma: Range = (0.85, 1.2)                # output gamma (<1 brightens midtones)
    saturation: Range = (0.75, 1.15)          # 1 = unchanged, 0 = gray
    noise_sigma: Range = (2.0, 4.0)           # sensor noise (8-bit levels), per frame
    blur_sigma: Range = (0.3, 0.9)            # optical blur (pixels)
    vignette: Range = (0.0, 0.25)             # brightness loss in the corners
    flicker: float = 0.02                     # frame-to-frame exposure wobble (relative)


IN_DOMAIN_RIG = RigStyle()

CROSS_DOMAIN_RIG = RigStyle(
    themes=("Garden", "Parking"),
    area=(19.0, 14.0),
    high_height=(10.0, 13.0),
    side_height=(1.8, 3.2),
    distance=(11.0, 19.0),
    hfov_deg=(48.0, 86.0),
    azimuth_jitter_deg=25.0,
    aim_jitter=3.0,
    wb_gain=0.2,
    exposure=(0.75, 1.25),
    gamma=(0.8, 1.3),
    saturation=(0.7, 1.25),
    noise_sigma=(3.0, 6.0),
    blur_sigma=(0.5, 1.3),
    vignette=(0.1, 0.4),
    flicker=0.04,
)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a generated dataset (identical config -> identical bytes)."""

    seed: int = 0                        # master seed; scenes derive theirs from it
    scenes: int = 2                      # scenes per (domain, split)
    views: int = 3                       # cameras per In-domain scene
    cross_views: int = 4                 # cameras per Cross-domain scene
    frames: int = 60                     # frames per view (1-based file names)
    width: int = 640                     # image width (px)
    height: int = 360                    # image height (px)
    fps: float = 10.0                    # frame rate: sets how far people move per frame
    people: int = 20                     # distinct people per scene (over the whole video);
    #   with the expression mix of raysys.synth.expressions, "say everyone" scores about as
    #   little as on CRTrack (docs/benchmark.md)
    cars: int = 2                        # cars per scene (parked or driving through)
    bicycles: int = 2                    # parked bicycles per scene (distractors)
    occluders: int = 4                   # static occluders: pillars, trees, kiosks, planters
    expressions: int = 12                # referring expressions per scene (at most)
    splits: tuple[str, ...] = ("train", "test")              # which splits to write
    domains: tuple[str, ...] = ("In-domain", "Cross-domain")  # which domains to write
    min_visible_fraction: float = 0.15   # visible / full silhouette below this: not in GT
    min_visible_pixels: int = 30         # fewer visible pixels than this: not in GT
    jpeg_quality: int = 90               # JPEG quality of the frames
    in_domain: RigStyle = field(default_factory=lambda: IN_DOMAIN_RIG)      # In-domain rig
    cross_domain: RigStyle = field(default_factory=lambda: CROSS_DOMAIN_RIG)  # Cross-domain

    def __post_init__(self) -> None:
        ints = {"scenes": 1, "views": 1, "cross_views": 1, "frames": 1, "width": 32,
                "height": 32, "people": 1, "cars": 0, "bicycles": 0, "occluders": 0,
                "expressions": 1, "min_visible_pixels": 1, "jpeg_quality": 1}
        for name, low in ints.items():
            v = getattr(self, name)
            if not isinstance(v, int) or v < low:
                raise ValueError(f"SynthConfig.{name} must be an integer >= {low}, got {v!r}")
        if self.scenes > 999:
            raise ValueError(f"SynthConfig.scenes must be <= 999, got {self.scenes}")
        if self.jpeg_quality > 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if not 0.0 <= self.min_visible_fraction < 1.0:
            raise ValueError(
                f"min_visible_fraction must be in [0, 1), got {self.min_visible_fraction}")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"fps must be a finite number > 0, got {self.fps}")
        bad = [s for s in self.splits if s not in ("train", "test")]
        if bad or not self.splits or len(set(self.splits)) != len(self.splits):
            raise ValueError(f"splits must be distinct names among train, test; got {self.splits}")
        bad = [d for d in self.domains if d not in ("In-domain", "Cross-domain")]
        if bad or not self.domains or len(set(self.domains)) != len(self.domains):
            raise ValueError(
                f"domains must be distinct names among In-domain, Cross-domain; got {self.domains}")

    def rig(self, domain: str) -> RigStyle:
        """The camera rig style of ``domain``."""
        return self.in_domain if domain == "In-domain" else self.cross_domain

    def num_views(self, domain: str) -> int:
        return self.views if domain == "In-domain" else self.cross_views


class SynthLimitError(ValueError):
    """A dataset larger than :data:`LIMITS` allows (refused before anything is written)."""


def check_limits(cfg: SynthConfig) -> None:
    """Refuse a dataset beyond :data:`LIMITS`, before anything is written.

    Raises:
        SynthLimitError: naming the setting, its limit and how to lift the limits.
    """
    views = max(cfg.num_views(d) for d in cfg.domains)
    images = sum(cfg.num_views(d) for d in cfg.domains) * cfg.scenes * len(cfg.splits) \
        * cfg.frames
    checks = [
        ("width (--size WxH)", cfg.width, LIMITS["side"]),
        ("height (--size WxH)", cfg.height, LIMITS["side"]),
        ("frames (--frames)", cfg.frames, LIMITS["frames"]),
        ("views (--views, --cross-views)", views, LIMITS["views"]),
        ("objects per scene (--people + --cars + --bicycles)",
         cfg.people + cfg.cars + cfg.bicycles, LIMITS["objects"]),
        ("images (views x scenes x splits x frames)", images, LIMITS["images"]),
    ]
    for what, value, limit in checks:
        if value > limit:
            raise SynthLimitError(
                f"SynthConfig {what} = {value:,} is above the limit of {limit:,}; use a "
                "smaller setting, or pass --allow-large (generate(..., allow_large=True)) to "
                "lift the limits")
