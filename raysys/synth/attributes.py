"""Colour vocabulary and the attributes of people, sampled so that people share some.

Colours are named with CRTrack's vocabulary. Each name has several shades (scene
radiance, before the camera's colour response), chosen so that neighbouring names are not
trivially separable once a camera tints them: light gray vs white vs light blue, navy vs
black, brown vs dark orange, pink vs light purple.

Sampling deliberately makes *partial matches*: some people copy another's coat colour (and
sometimes the trousers) but differ elsewhere, so a general expression matches several
people and a specific one has distractors that match all but one attribute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["COLOURS", "PersonAttributes", "sample_people", "colour_rgb"]

RGB = tuple[int, int, int]

# name -> shades (R, G, B); one shade is picked per garment, then jittered
COLOURS: dict[str, tuple[RGB, ...]] = {
    "black": ((28, 28, 32), (42, 40, 44), (36, 38, 50), (50, 48, 46)),
    "white": ((226, 226, 220), (204, 208, 212), (236, 232, 222), (215, 218, 226)),
    "gray": ((122, 122, 124), (150, 151, 156), (96, 98, 104), (172, 170, 166)),
    "red": ((168, 32, 36), (198, 52, 46), (140, 28, 44), (185, 60, 70)),
    "blue": ((42, 62, 140), (72, 102, 168), (32, 42, 92), (110, 136, 182)),
    "green": ((42, 112, 52), (74, 132, 62), (34, 82, 48), (96, 130, 92)),
    "yellow": ((222, 200, 52), (200, 182, 44), (230, 212, 96)),
    "orange": ((228, 122, 34), (210, 102, 42), (236, 150, 70)),
    "purple": ((112, 52, 132), (92, 62, 142), (140, 96, 160)),
    "pink": ((230, 152, 172), (212, 122, 152), (236, 180, 190)),
    "brown": ((112, 72, 42), (140, 96, 62), (92, 62, 42)),
}

# relative frequencies, roughly like CRTrack's expressions (dark coats and trousers dominate)
_TOP_P = {"black": 0.2, "white": 0.11, "gray": 0.12, "red": 0.1, "blue": 0.13, "green": 0.07,
          "yellow": 0.07, "orange": 0.05, "purple": 0.05, "pink": 0.05, "brown": 0.05}
_BOTTOM_P = {"black": 0.36, "blue": 0.24, "gray": 0.22, "brown": 0.07, "white": 0.06,
             "green": 0.05}
_SHOES_P = {"black": 0.4, "white": 0.35, "gray": 0.15, "brown": 0.1}
_INNER_P = {"white": 0.35, "black": 0.2, "gray": 0.15, "red": 0.1, "blue": 0.1, "yellow": 0.1}
_HEAD_P = {"black": 0.3, "white": 0.25, "red": 0.15, "blue": 0.15, "yellow": 0.15}
_BAG_P = {"black": 0.4, "brown": 0.15, "red": 0.15, "blue": 0.15, "gray": 0.15}
_BIKE_P = {"black": 0.3, "red": 0.2, "blue": 0.2, "white": 0.15, "green": 0.15}
_HAIR = ((24, 20, 18), (60, 40, 26), (96, 70, 44), (150, 120, 80), (120, 120, 120))
_SKIN = ((236, 200, 170), (210, 165, 130), (170, 120, 90), (120, 80, 56), (250, 216, 190))


@dataclass(frozen=True)
class PersonAttributes:
    """What a person wears and carries; colour names plus the radiance actually drawn.

    ``top`` is the coat; an open coat (``inner`` not None) shows the inner colour as a strip
    seen only from the front. ``bag_side`` is the side a handbag hangs on, seen from that
    side (and partly from the front/back). ``inner``, hair, skin, height and build are not
    named in expressions: they only make views of one person differ, and people differ.
    """

    top: str
    bottom: str
    shoes: str
    headwear: str           # "none" | "cap" | "helmet"
    headwear_colour: str | None
    bag: str                # "none" | "backpack" | "handbag"
    bag_colour: str | None
    bag_side: str           # "left" | "right" (handbag only)
    bicycle: bool           # riding a bicycle
    bicycle_colour: str | None
    inner: str | None       # colour under an open coat, None when closed
    long_coat: bool         # coat reaches the knees
    long_hair: bool
    height: float           # metres
    build: float            # width scale (1 = average)
    top_rgb: RGB
    bottom_rgb: RGB
    shoes_rgb: RGB
    headwear_rgb: RGB
    bag_rgb: RGB
    bicycle_rgb: RGB
    inner_rgb: RGB
    hair_rgb: RGB
    skin_rgb: RGB

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def colour_rgb(rng: np.random.Generator, name: str, jitter: int = 10) -> RGB:
    """A jittered shade of the named colour."""
    shades = COLOURS[name]
    base = np.array(shades[int(rng.integers(len(shades)))], dtype=np.int64)
    out = np.clip(base + rng.integers(-jitter, jitter + 1, size=3), 0, 255)
    return tuple(int(v) for v in out)


def _pick(rng: np.random.Generator, probs: dict[str, float], exclude: str | None = None) -> str:
    names = [n for n in probs if n != exclude]
    p = np.array([probs[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _sample_one(rng: np.random.Generator) -> dict:
    rider = bool(rng.random() < 0.15)
    head = "helmet" if rider and rng.random() < 0.7 else str(
        rng.choice(["none", "cap", "helmet"], p=[0.6, 0.28, 0.12]))
    bag = str(rng.choice(["none", "backpack", "handbag"], p=[0.45, 0.33, 0.22]))
    if rider and bag == "handbag":
        bag = "backpack"
    top = _pick(rng, _TOP_P)
    return {
        "top": top,
        "bottom": _pick(rng, _BOTTOM_P),
        "shoes": _pick(rng, _SHOES_P),
        "headwear": head,
        "headwear_colour": _pick(rng, _HEAD_P) if head != "none" else None,
        "bag": bag,
        "bag_colour": _pick(rng, _BAG_P) if bag != "none" else None,
        "bag_side": str(rng.choice(["left", "right"])),
        "bicycle": rider,
        "bicycle_colour": _pick(rng, _BIKE_P) if rider else None,
        "inner": _pick(rng, _INNER_P, exclude=top) if rng.random() < 0.45 else None,
        "long_coat": bool(rng.random() < 0.25) and not rider,
        "long_hair": bool(rng.random() < 0.35),
        "height": float(rng.uniform(1.58, 1.92)),
        "build": float(rng.uniform(0.88, 1.15)),
    }


def _finish(rng: np.random.Generator, a: dict) -> PersonAttributes:
    """Draw the radiance of every named colour (and the unnamed ones)."""
    def rgb(name: str | None) -> RGB:
        return colour_rgb(rng, name) if name else (0, 0, 0)

    hair = np.array(_HAIR[int(rng.integers(len(_HAIR)))]) + rng.integers(-8, 9, 3)
    skin = np.array(_SKIN[int(rng.integers(len(_SKIN)))]) + rng.integers(-8, 9, 3)
    return PersonAttributes(
        **a,
        top_rgb=rgb(a["top"]), bottom_rgb=rgb(a["bottom"]), shoes_rgb=rgb(a["shoes"]),
        headwear_rgb=rgb(a["headwear_colour"]), bag_rgb=rgb(a["bag_colour"]),
        bicycle_rgb=rgb(a["bicycle_colour"]), inner_rgb=rgb(a["inner"]),
        hair_rgb=tuple(int(v) for v in np.clip(hair, 0, 255)),
        skin_rgb=tuple(int(v) for v in np.clip(skin, 0, 255)),
    )


def sample_people(rng: np.random.Generator, n: int) -> list[PersonAttributes]:
    """Attributes of ``n`` people with deliberate partial matches.

    About a third of the people copy an earlier person's coat colour (half of those also
    the trousers) and differ in headwear, bag or shoes, so that specific expressions have
    near-miss distractors and general ones match several people.
    """
    raw: list[dict] = []
    for i in range(n):
        a = _sample_one(rng)
        if i > 0 and rng.random() < 0.35:
            src = raw[int(rng.integers(i))]
            a["top"] = src["top"]
            if a["inner"] == a["top"]:
                a["inner"] = None
            if rng.random() < 0.5:
                a["bottom"] = src["bottom"]
        raw.append(a)
    return [_finish(rng, a) for a in raw]
