"""The ``"attributes"`` describer: the embedded attribute net read over a whole trajectory.

Paper §3.2.2 has an MLLM describe each cross-view trajectory ("attribute-centric
descriptions ... color, clothing, and accessories"). Here the attribute net
(:mod:`raysys.backends.attribute_net`) reads every sampled crop of the trajectory (all its
views and frames) with the colour statistics of the frame it was cut from
(:meth:`AttributeDescriber.frame_context`; Stage 1 passes them as ``contexts``), the
per-crop probabilities are averaged per attribute (so a backpack seen only from behind
still counts, weighed by the crops that show it), and each attribute
gets its confidence: the averaged probability of its most likely class. An attribute whose
confidence is under ``min_confidence`` is left out of every sentence (grouping never hears
of what the describer cannot see).

Sentences follow the referring expressions' phrasing ("A person in a white cap, black coat
and gray trousers, carrying a backpack"); :func:`phrase` and :data:`LEVELS` give the full
sentence and the more general sentences it implies (one per attribute combination that
expressions use), which Stage 1's grouping turns into expressions of several trajectories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from raysys.backends._image import check_crops
from raysys.backends.colours import PERSON_CATEGORIES

__all__ = ["AttributeDescriberConfig", "AttributeDescriber", "LEVELS", "aggregate", "phrase"]

# attribute combinations of the general sentences, as expressions combine them: coat;
# coat and trousers (and shoes); headwear and coat (and trousers); the bag alone, with the
# coat, with coat and trousers (and headwear); the bicycle alone, with the coat, with coat
# and trousers (and headwear). "bag_colour" names the bag's colour too.
LEVELS: tuple[tuple[str, ...], ...] = (
    ("top",), ("top", "bottom"), ("top", "bottom", "shoes"), ("headwear", "top"),
    ("headwear", "top", "bottom"), ("bag", "bag_colour"), ("top", "bag"),
    ("top", "bottom", "bag", "bag_colour"), ("headwear", "top", "bottom", "bag"),
    ("bicycle",), ("top", "bicycle"), ("top", "bottom", "bicycle"),
    ("headwear", "top", "bottom", "bicycle"),
)
_FULL = ("headwear", "top", "bottom", "bicycle", "bag", "bag_colour")


@dataclass(frozen=True)
class AttributeDescriberConfig:
    """Settings of the attribute describer."""

    weights: str = "embedded"  # "embedded" (the shipped net) or a .pt of pretrain-describer
    min_confidence: float = 0.3  # attributes less sure than this are left out (0.3: the
    #    best per-person accuracy of every attribute on GT crops of generated seeds
    #    4081-4084, which no report scores; 0.5 left out 13% of shoes, 29% of bag colours)
    levels: str = "all"  # general sentences: "all" (every LEVELS row) | "none"
    batch: int = 256  # crops per forward pass


def aggregate(probs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-crop probabilities ``{head: (n, K)}`` -> the trajectory's ``{head: (K,)}``:
    their mean over the crops (every view and frame counts alike)."""
    out = {}
    for k, p in probs.items():
        p = np.asarray(p, np.float64)
        if p.ndim != 2 or len(p) == 0:
            raise ValueError(f"{k}: need (n >= 1, K) probabilities, got shape {p.shape}")
        out[k] = p.mean(axis=0)
    return out


def _read(mean: Mapping[str, np.ndarray], min_confidence: float) -> dict[str, Any]:
    """Averaged probabilities -> attributes: each head's best class and confidence; an
    attribute left out (None) when under ``min_confidence``; colours of absent objects
    left out."""
    from raysys.backends.attribute_net import CONDITIONAL, HEADS

    out: dict[str, Any] = {"confidence": {}}
    for k, classes in HEADS.items():
        if k not in mean:
            continue
        i = int(np.argmax(mean[k]))
        conf = float(mean[k][i])
        out["confidence"][k] = round(conf, 3)
        out[k] = classes[i] if conf >= min_confidence else None
    out["bicycle"] = out.get("bicycle") == "yes"
    for k in ("headwear", "bag"):
        if out.get(k) == "none":
            out[k] = None
    for colour, parent in CONDITIONAL.items():
        if not out.get(parent):
            out[colour] = None
    return out


def _article(phrase_: str) -> str:
    return "an" if phrase_[:1].lower() in "aeiou" else "a"


def phrase(attrs: Mapping[str, Any], keys: Sequence[str] = _FULL) -> str | None:
    """The sentence of ``attrs`` restricted to ``keys``, in the expressions' phrasing
    ("A person wearing a red coat and black trousers", "A person in a black helmet and
    blue coat, riding a bicycle", "A person carrying a black backpack"); None when one of
    ``keys`` is unknown (for a general level) or nothing is known."""
    want = set(keys)
    worn, extras = [], []
    if "headwear" in want and attrs.get("headwear"):
        worn.append(f"{attrs.get('headwear_colour') or ''} {attrs['headwear']}".strip())
    for k, noun in (("top", "coat"), ("bottom", "trousers"), ("shoes", "shoes")):
        if k in want and attrs.get(k):
            worn.append(f"{attrs[k]} {noun}")
    if "bicycle" in want and attrs.get("bicycle"):
        extras.append("riding a bicycle")
    if "bag" in want and attrs.get("bag"):
        colour = attrs.get("bag_colour") if "bag_colour" in want else None
        what = f"{colour} {attrs['bag']}" if colour else attrs["bag"]
        extras.append(f"carrying {_article(what)} {what}")
    if keys is not _FULL and len(worn) + len(extras) < len(want - {"bag_colour"}):
        return None  # a general level needs every one of its attributes
    if not worn and not extras:
        return None
    if not worn:
        return "A person " + " and ".join(extras)
    listed = worn[0] if len(worn) == 1 else ", ".join(worn[:-1]) + " and " + worn[-1]
    listed = f"{_article(listed)} {listed}"
    return f"A person wearing {listed}" if not extras else \
        f"A person in {listed}, " + " and ".join(extras)


class AttributeDescriber:
    """The ``"attributes"`` backend: see the module docstring.

    Args:
        config: weights, confidence threshold, general levels; or pass its fields as
            keyword arguments (``DESCRIBER_BACKENDS.build("attributes", min_confidence=.6)``).
        device: ignored (the net is small and runs on the CPU); accepted so every describer
            builds alike.
    """

    def __init__(self, config: AttributeDescriberConfig | None = None, device: str = "cpu",
                 **kw: Any) -> None:
        from raysys.backends.attribute_net import load_attribute_net

        self.config = config or AttributeDescriberConfig(**kw)
        if self.config.levels not in ("all", "none"):
            raise ValueError(f"levels must be 'all' or 'none', got {self.config.levels!r}")
        self.net, self.meta = load_attribute_net(self.config.weights)

    @staticmethod
    def frame_context(frame: np.ndarray) -> np.ndarray:
        """What the net needs of the whole frame a crop was cut from (its colour
        statistics, :func:`~raysys.backends.attribute_net.frame_context`): pass one per crop
        as ``contexts``."""
        from raysys.backends.attribute_net import frame_context

        return frame_context(frame)

    def crop_probabilities(self, crops: Sequence[np.ndarray],
                           masks: Sequence[np.ndarray] | None = None,
                           contexts: Sequence[np.ndarray] | None = None
                           ) -> dict[str, np.ndarray]:
        """``{head: (n, K)}`` softmax probabilities of each crop (``contexts``: one
        :meth:`frame_context` per crop, or None when the frames are not at hand)."""
        from raysys.backends.attribute_net import net_input, predict

        crops_, masks_ = check_crops(crops, masks)
        if not crops_:
            raise ValueError("describe needs at least one crop")
        x = np.stack([net_input(c, m) for c, m in zip(crops_, masks_, strict=True)])
        ctx = None if contexts is None else np.stack([np.asarray(c, np.float32)
                                                      for c in contexts])
        return predict(self.net, x, ctx, self.config.batch)

    def describe_attributes(self, crops: Sequence[np.ndarray],
                            masks: Sequence[np.ndarray] | None = None,
                            category: str = "person",
                            contexts: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
        """The trajectory's attributes: ``{head: value or None, "confidence": {head: p},
        "is_person", "category", "n_crops"}`` (other categories: no attributes)."""
        is_person = category.strip().lower() in PERSON_CATEGORIES
        base = {"category": category, "is_person": is_person, "n_crops": len(crops)}
        if not is_person:
            return {**base, "confidence": {}}
        mean = aggregate(self.crop_probabilities(crops, masks, contexts))
        return {**base, **_read(mean, self.config.min_confidence)}

    def describe_levels(self, crops: Sequence[np.ndarray],
                        masks: Sequence[np.ndarray] | None = None,
                        category: str = "person",
                        contexts: Sequence[np.ndarray] | None = None) -> list[str]:
        """The full sentence, then the general ones (:data:`LEVELS`) it implies."""
        attrs = self.describe_attributes(crops, masks, category, contexts)
        if not attrs["is_person"]:
            noun = category.strip().lower() or "object"
            return [f"{_article(noun).capitalize()} {noun}"]
        full = phrase(attrs) or "A person"
        out = [full]
        for keys in (LEVELS if self.config.levels == "all" else ()):
            t = phrase(attrs, keys)
            if t and t not in out:
                out.append(t)
        return out

    def describe(self, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None,
                 category: str = "person", contexts: Sequence[np.ndarray] | None = None
                 ) -> str:
        """One trajectory's crops (any views and frames) -> its full sentence."""
        return self.describe_levels(crops, masks, category, contexts)[0]

    def describe_batch(
        self, items: Sequence[tuple[Sequence[np.ndarray], Sequence[np.ndarray] | None, str]]
    ) -> list[str]:
        """``describe`` over ``(crops, masks, category)`` triples."""
        return [self.describe(c, m, cat) for c, m, cat in items]
