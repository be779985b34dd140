"""Classical attribute describer: colour naming of body regions plus silhouette cues.

The default ``"colours"`` describer of Stage 1 (paper §3.2 uses an MLLM; this backend needs
no weights). For a person it splits each (masked) crop into head, top and bottom bands of
the silhouette, names the colours of each band's pixels in the CRTrack vocabulary, and votes
over all crops of the trajectory (several cameras, several frames), then phrases the result
the way CRTrack's expressions are written:

* "A man wearing a red coat and black trousers"
* "A man in a white cap, black coat and gray trousers"
* "A man in a black helmet, blue coat and gray trousers, riding a bicycle"

Cues and how far to trust them (see ``README``/report):

* top / bottom colours: reliable on clean masks; votes are soft (per-crop shares summed),
  and each crop is white-balanced against its own background, so one camera with a strong
  colour cast does not decide alone.
* headwear: found only when the crown of the head is neither skin- nor hair-coloured, so a
  black cap is indistinguishable from black hair and is never reported; grey hair can read
  as a gray cap.
* bicycle: a silhouette much wider at the bottom than at the torso (side views only, and
  only if the mask or the crop box includes the bicycle).
* bags: not estimated (``"bag": None``) - a bag is small, often seen from one side only, and
  colour statistics do not separate it from the coat reliably.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from raysys.backends._image import check_crops, resize_nearest, rgb_to_lab, white_balance
from raysys.backends.phrases import TWO_COLOUR_MIN_SHARE, attributes_to_text, general_phrases

__all__ = [
    "COLOUR_NAMES",
    "PERSON_CATEGORIES",
    "ColourDescriberConfig",
    "ColourDescriber",
    "name_colours",
]

# CRTrack's colour vocabulary, in a fixed order (indices are used by name_colours).
COLOUR_NAMES: tuple[str, ...] = (
    "black", "white", "gray", "red", "blue", "green", "yellow", "orange", "purple", "pink",
    "brown",
)
_BLACK, _WHITE, _GRAY = 0, 1, 2
PERSON_CATEGORIES = frozenset({"person", "pedestrian", "people", "man", "woman", "human"})

# sRGB prototypes of the chromatic names; several per name cover light/dark/muted shades.
_PROTOTYPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((220, 20, 30), (180, 20, 20), (140, 15, 20), (230, 60, 60), (110, 20, 25)),
    "orange": ((255, 140, 0), (240, 110, 20), (255, 165, 60), (210, 100, 10)),
    "yellow": ((250, 220, 20), (240, 240, 80), (220, 200, 40), (190, 170, 30)),
    "green": ((30, 160, 40), (20, 100, 30), (100, 200, 80), (60, 120, 60), (0, 150, 130),
              (40, 70, 40)),
    "blue": ((30, 60, 200), (20, 40, 120), (60, 120, 220), (10, 20, 80), (100, 150, 230),
             (0, 160, 200), (70, 90, 140)),
    "purple": ((128, 0, 128), (110, 50, 160), (150, 80, 200), (80, 30, 110), (170, 60, 170)),
    "pink": ((255, 150, 190), (255, 105, 180), (230, 130, 160), (255, 190, 200), (220, 80, 150)),
    "brown": ((139, 69, 19), (120, 80, 50), (100, 60, 30), (160, 110, 60), (90, 50, 30),
              (70, 45, 30)),
}


@functools.cache
def _prototype_lab() -> tuple[np.ndarray, np.ndarray]:
    """(P, 3) Lab values of the prototypes and (P,) their indices into COLOUR_NAMES."""
    lab = rgb_to_lab(np.array([c for cs in _PROTOTYPES.values() for c in cs], np.float32) / 255)
    names = np.array([COLOUR_NAMES.index(n) for n, cs in _PROTOTYPES.items() for _ in cs])
    return lab, names


_L_WEIGHT = 0.5  # lightness counts half as much as chroma when matching prototypes


@dataclass(frozen=True)
class ColourDescriberConfig:
    """Settings of the colour describer; the defaults run on any CPU."""

    max_height: int = 128  # crops taller than this are downsampled (nearest) first
    head_end: float = 0.16  # head band: top 16% of the silhouette's height
    crown_end: float = 0.08  # a cap covers the top of the head: 0..8% of the height
    top_band: tuple[float, float] = (0.2, 0.5)  # coat: 20..50% of the height
    bottom_band: tuple[float, float] = (0.55, 0.92)  # trousers, above the shoes
    white_balance: float = 0.8  # grey-world strength over background pixels (0 = off)
    exposure: float = 0.5  # partial normalisation of the background's mean luma to 0.45
    achromatic_chroma: float = 10.0  # Lab chroma under which a pixel is black/gray/white
    black_max_l: float = 22.0  # achromatic pixels darker than this are black
    white_min_l: float = 58.0  # ... lighter than this are white (shaded cloth is darker
    #                            than its colour: on the generated benchmark white coats
    #                            measure L ~62, gray ones ~40, black ones ~15)
    chroma_weight: float = 0.4  # weight of chroma (vs hue) differences when matching
    #                             prototypes: shading and haze change a colour's chroma
    #                             more than its hue (a shaded purple keeps its hue)
    min_region_share: float = 0.3  # a region's winning colour needs this voted share
    two_colour_min_share: float = TWO_COLOUR_MIN_SHARE  # "red and black coat" when the
    #   2nd colour has this share of the region
    headwear_min_share: float = 0.5  # mean share of non-skin, non-hair crown pixels
    bicycle_min_fraction: float = 0.34  # fraction of crops whose silhouette says "bicycle"
    bicycle_width_ratio: float = 1.8  # bottom width / torso width of a side-view cyclist
    bicycle_aspect: float = 0.55  # bottom width / silhouette height of a side-view cyclist


def name_colours(lab: np.ndarray, config: ColourDescriberConfig | None = None) -> np.ndarray:
    """Name Lab pixels in the CRTrack vocabulary.

    Dark or low-chroma pixels are achromatic (black/gray/white by lightness; the chroma
    threshold rises for dark pixels, whose chroma is small anyway); the rest take the name
    of the nearest chromatic prototype, with lightness differences weighted 0.5 and the
    (a, b) difference split CIE94-style into chroma and hue parts, chroma weighted
    ``chroma_weight`` (a shaded or hazy colour loses chroma, not hue).

    Args:
        lab: ``(..., 3)`` Lab values.
    Returns:
        ``(...)`` int array of indices into :data:`COLOUR_NAMES`.
    """
    c = config or ColourDescriberConfig()
    flat = lab.reshape(-1, 3)
    L, a, b = flat[:, 0], flat[:, 1], flat[:, 2]
    chroma = np.hypot(a, b)
    thr = c.achromatic_chroma + 0.3 * np.maximum(0.0, 40.0 - L)
    achro = (chroma < thr) | (L < 10.0)
    out = np.where(L < c.black_max_l, _BLACK, np.where(L > c.white_min_l, _WHITE, _GRAY))
    if (~achro).any():
        proto, proto_name = _prototype_lab()
        p = flat[~achro]
        d_ab2 = ((p[:, None, 1] - proto[None, :, 1]) ** 2
                 + (p[:, None, 2] - proto[None, :, 2]) ** 2)  # (N, P)
        d_c2 = (chroma[~achro][:, None] - np.hypot(proto[:, 1], proto[:, 2])[None]) ** 2
        d = (((p[:, None, 0] - proto[None, :, 0]) * _L_WEIGHT) ** 2
             + c.chroma_weight ** 2 * d_c2 + np.maximum(d_ab2 - d_c2, 0.0))  # (N, P)
        out[~achro] = proto_name[np.argmin(d, axis=1)]
    return out.reshape(lab.shape[:-1])


def _skin_or_hair(lab: np.ndarray) -> np.ndarray:
    """(N, 3) Lab -> (N,) bool: skin-toned or dark hair-like pixels."""
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    hue = np.degrees(np.arctan2(b, a))
    skin = (L > 35) & (L < 88) & (a > 4) & (a < 32) & (b > 6) & (b < 36) & (hue > 30) & (hue < 78)
    hair = (L < 35) & (np.hypot(a, b) < 25)
    return skin | hair


def _shares(idx: np.ndarray) -> np.ndarray:
    """Colour indices -> (len(COLOUR_NAMES),) shares summing to 1 (zeros if empty)."""
    h = np.bincount(idx.ravel(), minlength=len(COLOUR_NAMES)).astype(np.float64)
    return h / h.sum() if h.sum() > 0 else h


def _ranked(votes: np.ndarray) -> list[tuple[str, float]]:
    """Voted shares -> [(name, share), ...] best first, zero shares left out."""
    total = votes.sum()
    if total <= 0:
        return []
    order = np.argsort(-votes, kind="stable")
    return [(COLOUR_NAMES[i], round(float(votes[i] / total), 3)) for i in order if votes[i] > 0]


class ColourDescriber:
    """The ``"colours"`` backend: see the module docstring for what it can and cannot see.

    Args:
        config: thresholds and band positions.
        device: ignored (numpy); accepted so every describer builds alike.
    """

    def __init__(self, config: ColourDescriberConfig | None = None, device: str = "cpu") -> None:
        self.config = config or ColourDescriberConfig()

    def describe(
        self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None,
        category: str = "person",
    ) -> str:
        """One trajectory's crops (any views/frames) -> one CRTrack-style sentence."""
        return attributes_to_text(self.describe_attributes(crops, masks, category))

    def describe_levels(
        self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None,
        category: str = "person",
    ) -> list[str]:
        """The full sentence, then the more general ones it implies (see
        :func:`general_phrases`): "A man wearing a green coat and black trousers" also
        yields "A man wearing a green coat"."""
        attrs = self.describe_attributes(crops, masks, category)
        full = attributes_to_text(attrs)
        return [full, *(t for t in general_phrases(attrs) if t != full)]

    def describe_batch(
        self, items: Sequence[tuple[Sequence[np.ndarray], Sequence[np.ndarray] | None, str]]
    ) -> list[str]:
        """``describe`` over ``(crops, masks, category)`` triples."""
        return [self.describe(c, m, cat) for c, m, cat in items]

    def describe_attributes(
        self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None,
        category: str = "person",
    ) -> dict[str, Any]:
        """Voted attributes of one trajectory.

        Returns:
            A dict with ``category``, ``is_person``, ``n_crops`` and, for persons, ``top`` /
            ``bottom`` (colour name or ``None``), ``top_colours`` / ``bottom_colours``
            (``[(name, share), ...]``, best first), ``headwear`` (colour or ``None``),
            ``headwear_share``, ``bicycle`` (bool), ``bicycle_votes`` (fraction of crops),
            ``bag`` (always ``None``: not estimated); for other categories ``colour`` and
            ``colours``.
        """
        crops_, masks_ = check_crops(crops, masks)
        if not crops_:
            raise ValueError("describe needs at least one crop")
        c = self.config
        n = len(crops_)
        is_person = category.strip().lower() in PERSON_CATEGORIES
        attrs: dict[str, Any] = {"category": category, "is_person": is_person, "n_crops": n}
        per_crop = [self._analyse(crop, mask, is_person) for crop, mask in
                    zip(crops_, masks_, strict=True)]
        if not is_person:
            votes = sum(p["whole"] for p in per_crop)
            ranked = _ranked(votes)
            attrs["colours"] = ranked
            attrs["colour"] = ranked[0][0] if ranked else None
            return attrs
        for part in ("top", "bottom"):
            ranked = _ranked(sum(p[part] for p in per_crop))
            attrs[f"{part}_colours"] = ranked
            attrs[part] = ranked[0][0] if ranked and ranked[0][1] >= c.min_region_share else None
        crown_other = float(np.mean([p["crown_other_share"] for p in per_crop]))
        cap_votes = sum(p["crown_other"] for p in per_crop)
        attrs["headwear_share"] = round(crown_other, 3)
        attrs["headwear"] = (COLOUR_NAMES[int(np.argmax(cap_votes))]
                             if crown_other >= c.headwear_min_share and cap_votes.sum() > 0
                             else None)
        bike = float(np.mean([p["bicycle"] for p in per_crop]))
        attrs["bicycle_votes"] = round(bike, 3)
        attrs["bicycle"] = bike >= c.bicycle_min_fraction
        attrs["bag"] = None
        return attrs

    def _analyse(self, crop: np.ndarray, mask: np.ndarray | None, is_person: bool) -> dict:
        """Per-crop colour shares of each band, crown statistics and the bicycle vote."""
        c = self.config
        h, w = crop.shape[:2]
        if h > c.max_height:
            nw = max(1, round(w * c.max_height / h))
            crop = resize_nearest(crop, c.max_height, nw)
            mask = None if mask is None else resize_nearest(mask, c.max_height, nw)
            h, w = crop.shape[:2]
        img = crop.astype(np.float32) / 255.0
        has_mask = mask is not None and mask.sum() >= 8
        m = mask if has_mask else _proxy_mask(img)
        # the background around the object is grey on average: use it as the colour and
        # exposure reference; without one, the whole crop at half strength
        use_bg = has_mask and (~m).sum() >= 0.15 * m.size
        ref = img[~m] if use_bg else img.reshape(-1, 3)
        img = white_balance(img, ref, c.white_balance if use_bg else 0.5 * c.white_balance)
        if c.exposure > 0 and use_bg:  # a crop's own mean luma is mostly the object's
            ref = img[~m]
            luma = float(ref.mean(axis=0) @ np.array([0.299, 0.587, 0.114])) + 1e-3
            img = np.clip(img * (0.45 / luma) ** c.exposure, 0.0, 1.0)
        lab = rgb_to_lab(img)  # (h, w, 3)
        names = name_colours(lab, c)  # (h, w)
        out: dict[str, Any] = {}
        if not is_person:
            out["whole"] = _shares(names[m])
            return out
        rows = np.flatnonzero(m.any(axis=1))
        y0, y1 = int(rows[0]), int(rows[-1]) + 1
        sh = y1 - y0  # silhouette height in rows

        def band(f0: float, f1: float) -> slice:
            a = y0 + int(round(f0 * sh))
            return slice(a, max(a + 1, y0 + int(round(f1 * sh))))

        # torso column span; with a bicycle the bottom band is restricted to it (legs, not wheels)
        torso = m[band(*c.top_band)]
        widths = torso.sum(axis=1)
        cols = np.flatnonzero(torso.any(axis=0))
        torso_w = float(np.median(widths[widths > 0])) if (widths > 0).any() else 0.0
        bottom_rows = m[band(0.55, 1.0)]
        bcols = np.flatnonzero(bottom_rows.any(axis=0))
        bottom_w = float(bcols[-1] - bcols[0] + 1) if bcols.size else 0.0
        if has_mask:
            out["bicycle"] = (torso_w > 0 and bottom_w >= c.bicycle_width_ratio * torso_w
                              and bottom_w >= c.bicycle_aspect * sh)
        else:
            out["bicycle"] = w >= 0.7 * h  # a person's box is rarely this wide
        out["top"] = _shares(names[band(*c.top_band)][torso])
        bm = m[band(*c.bottom_band)].copy()
        if out["bicycle"] and cols.size:
            keep = np.zeros(w, bool)
            keep[cols[0]: cols[-1] + 1] = True
            bm &= keep[None, :]
        out["bottom"] = _shares(names[band(*c.bottom_band)][bm])
        crown_sl = band(0.0, c.crown_end)
        crown_m = m[crown_sl]
        crown_lab = lab[crown_sl][crown_m]  # (N, 3)
        other = ~_skin_or_hair(crown_lab)
        out["crown_other_share"] = float(other.mean()) if other.size else 0.0
        out["crown_other"] = _shares(names[crown_sl][crown_m][other])
        return out


def _proxy_mask(img: np.ndarray) -> np.ndarray:
    """A rough object mask for a crop without one: the middle half of the columns, minus
    pixels close (Lab distance < 12) to the median colour of the crop's border.

    Args:
        img: (H, W, 3) float RGB in [0, 1].
    """
    h, w = img.shape[:2]
    m = np.zeros((h, w), bool)
    m[:, w // 4: max(w // 4 + 1, 3 * w // 4)] = True
    lab = rgb_to_lab(img)
    border = np.concatenate([lab[:, 0], lab[:, -1], lab[0]], axis=0)  # (2H + W, 3)
    fg = np.linalg.norm(lab - np.median(border, axis=0), axis=-1) >= 12.0
    return m & fg if (m & fg).sum() >= 0.25 * m.sum() else m
