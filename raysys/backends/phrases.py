"""Attribute descriptions as text: the full phrase of a person's attributes and the general
phrases (one attribute each) that grouping also uses; shared by the describers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TWO_COLOUR_MIN_SHARE", "attributes_to_text", "general_phrases"]

# "red and black coat" when the 2nd colour has this share of the region's pixels
TWO_COLOUR_MIN_SHARE = 0.4


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _colour_phrase(ranked: Sequence[tuple[str, float]], first: str | None, min_share: float
                   ) -> str | None:
    """'red' or 'red and black' (second colour only if it has ``min_share``)."""
    if first is None:
        return None
    if len(ranked) > 1 and ranked[1][1] >= min_share:
        return f"{first} and {ranked[1][0]}"
    return first


# the general expressions a person's attributes imply, as in CRTrack's expressions
# ("A person wearing a blue coat", "... blue coat and black trousers", "... riding a
# bicycle", "A person wearing a black cap and green coat"); the full sentence is the most
# specific one
_GENERAL_LEVELS: tuple[tuple[str, ...], ...] = (
    ("top",), ("top", "bottom"), ("headwear", "top"), ("bicycle",), ("top", "bicycle"),
)


def general_phrases(attrs: Mapping[str, Any]) -> list[str]:
    """More general sentences implied by a person's attributes (one colour per garment).

    Each level of ``_GENERAL_LEVELS`` whose attributes are all known gives one sentence
    built from those attributes only; other categories give none. Several trajectories
    share a general sentence, so a general expression refers to several objects, like
    CRTrack's "A person wearing a green coat".
    """
    if not attrs.get("is_person", True):
        return []
    out: list[str] = []
    for keys in _GENERAL_LEVELS:
        if all(attrs.get(k) for k in keys):
            text = attributes_to_text({"is_person": True, **{k: attrs[k] for k in keys}})
            if text not in out:
                out.append(text)
    return out


def attributes_to_text(
    attrs: Mapping[str, Any], two_colour_min_share: float | None = None
) -> str:
    """Phrase attributes from :meth:`ColourDescriber.describe_attributes` like CRTrack.

    "A man wearing a red coat and black trousers"; with headwear or an action the verb is
    "in": "A man in a white cap, black coat and gray trousers", "A man in a black helmet,
    blue coat and gray trousers, riding a bicycle"; other categories: "A red car".
    """
    two = TWO_COLOUR_MIN_SHARE if two_colour_min_share is None else two_colour_min_share
    if not attrs.get("is_person", True):
        colour = attrs.get("colour")
        noun = str(attrs.get("category", "object")).strip().lower() or "object"
        text = f"{colour} {noun}" if colour else noun
        return f"{_article(text).capitalize()} {text}"
    items: list[str] = []
    if attrs.get("headwear"):
        items.append(f"{attrs['headwear']} {'helmet' if attrs.get('bicycle') else 'cap'}")
    top = _colour_phrase(attrs.get("top_colours", ()), attrs.get("top"), two)
    if top:
        items.append(f"{top} coat")
    bottom = _colour_phrase(attrs.get("bottom_colours", ()), attrs.get("bottom"), two)
    if bottom:
        items.append(f"{bottom} trousers")
    actions = ["riding a bicycle"] if attrs.get("bicycle") else []
    text = "A man"
    if items:
        listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
        verb = "in" if (attrs.get("headwear") or actions) else "wearing"
        text += f" {verb} {_article(listed)} {listed}"
        if actions:
            text += ", " + " and ".join(actions)
    elif actions:
        text += " " + " and ".join(actions)
    return text
