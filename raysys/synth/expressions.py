"""Referring expressions composed from people's attributes, in CRTrack's phrasing.

A :class:`Query` is a conjunction of attribute constraints; its text follows CRTrack
("A person wearing a red coat and black trousers", "A person in a black helmet, blue coat
and gray trousers, riding a bicycle", "A person in a white cap, black coat and gray
trousers, carrying a backpack") and it refers to *every* person whose attributes satisfy
it. For each scene we enumerate candidate queries from each person's attributes at several
levels of detail and pick a CRTrack-like mix (:data:`SIZE_MIX`): most expressions refer
to 1-4 people, a few general ones ("A person wearing a black coat") to more; no two have
the same text. The picks spread over the crowd (candidates that refer to people no
expression refers to yet come first), so that, as in CRTrack, the people referred to in a
scene are many more than any one expression refers to, and "say everyone" scores low.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from raysys.synth.attributes import PersonAttributes

__all__ = ["SIZE_MIX", "Query", "candidate_queries", "select_expressions", "size_quota"]

# The share of a scene's expressions that refer to 1, 2, 3, 4 and 5 or more people. CRTrack's
# In-domain test has 42% / 22% / 12% / 5% / 17% (40 expressions, 2.75 people on average):
# mostly specific, a few general ones ("A man wearing a black coat", up to 11 people).
SIZE_MIX = (0.40, 0.25, 0.15, 0.08, 0.12)


@dataclass(frozen=True)
class Query:
    """Attribute constraints; None means "not mentioned" (any value matches)."""

    top: str | None = None              # coat colour
    bottom: str | None = None           # trousers colour
    shoes: str | None = None            # shoes colour
    headwear: str | None = None         # "cap" | "helmet"
    headwear_colour: str | None = None
    bag: str | None = None              # "backpack" | "handbag"
    bag_colour: str | None = None
    bicycle: bool = False               # riding a bicycle

    def matches(self, a: PersonAttributes) -> bool:
        checks = (
            (self.top, a.top), (self.bottom, a.bottom), (self.shoes, a.shoes),
            (self.headwear, a.headwear), (self.headwear_colour, a.headwear_colour),
            (self.bag, a.bag), (self.bag_colour, a.bag_colour),
        )
        if any(want is not None and want != have for want, have in checks):
            return False
        return a.bicycle or not self.bicycle

    @property
    def text(self) -> str:
        """The expression, e.g. "A person in a white cap, black coat and gray trousers,
        carrying a backpack"."""
        worn = []
        if self.headwear:
            worn.append(f"{self.headwear_colour} {self.headwear}".strip())
        if self.top:
            worn.append(f"{self.top} coat")
        if self.bottom:
            worn.append(f"{self.bottom} trousers")
        if self.shoes:
            worn.append(f"{self.shoes} shoes")
        extras = []
        if self.bicycle:
            extras.append("riding a bicycle")
        if self.bag:
            what = f"{self.bag_colour} {self.bag}" if self.bag_colour else self.bag
            extras.append(f"carrying {_article(what)} {what}")
        if not worn and not extras:
            raise ValueError("a Query must constrain at least one attribute")
        if not worn:
            return "A person " + " and ".join(extras)
        listed = worn[0] if len(worn) == 1 else ", ".join(worn[:-1]) + " and " + worn[-1]
        listed = f"{_article(listed)} {listed}"
        if not extras:
            return f"A person wearing {listed}"
        return f"A person in {listed}, " + " and ".join(extras)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def candidate_queries(a: PersonAttributes) -> list[Query]:
    """Queries that ``a`` satisfies, from general to specific."""
    hw = dict(headwear=a.headwear, headwear_colour=a.headwear_colour) \
        if a.headwear != "none" else None
    out = [Query(top=a.top), Query(top=a.top, bottom=a.bottom),
           Query(top=a.top, bottom=a.bottom, shoes=a.shoes)]
    if hw:
        out += [Query(top=a.top, **hw), Query(top=a.top, bottom=a.bottom, **hw)]
    if a.bag != "none":
        out += [Query(bag=a.bag, bag_colour=a.bag_colour), Query(top=a.top, bag=a.bag),
                Query(top=a.top, bottom=a.bottom, bag=a.bag, bag_colour=a.bag_colour)]
        if hw:
            out.append(Query(top=a.top, bottom=a.bottom, bag=a.bag, **hw))
    if a.bicycle:
        out += [Query(bicycle=True), Query(top=a.top, bicycle=True),
                Query(top=a.top, bottom=a.bottom, bicycle=True)]
        if hw:
            out.append(Query(top=a.top, bottom=a.bottom, bicycle=True, **hw))
    return out


def size_quota(n: int, mix: tuple[float, ...] = SIZE_MIX) -> list[int]:
    """How many of ``n`` expressions refer to 1, 2, 3, 4 and 5+ people: ``mix`` scaled to
    ``n`` by largest remainders (ties to the smaller size), so the counts sum to ``n``."""
    raw = [n * w / sum(mix) for w in mix]
    out = [int(r) for r in raw]
    by_rest = sorted(range(len(mix)), key=lambda b: (out[b] - raw[b], b))
    for b in by_rest[:n - sum(out)]:
        out[b] += 1
    return out


def _bucket(k: int) -> int:
    """Size bucket of an expression referring to ``k`` people: 0..3 for 1..4, 4 for 5+."""
    return min(k, len(SIZE_MIX)) - 1


def _slots(quota: list[int]) -> list[int]:
    """The buckets to fill, one per expression, interleaved (1, 2, 3, 4, 5+, 1, 2, ...) so
    that the specific and general picks alternate in their claim on uncovered people."""
    left, out = list(quota), []
    while any(left):
        for b, k in enumerate(left):
            if k:
                out.append(b)
                left[b] -= 1
    return out


def select_expressions(rng: np.random.Generator, people: Mapping[int, PersonAttributes],
                       n: int, mix: tuple[float, ...] = SIZE_MIX
                       ) -> list[tuple[Query, tuple[int, ...]]]:
    """Pick up to ``n`` distinct expressions and the ids each refers to.

    Args:
        rng: the scene's random generator.
        people: global id -> attributes of the people that can be referred to (those
            visible in at least one view).
        n: how many expressions to return (fewer when the attributes do not allow).
        mix: the share of expressions referring to 1, 2, 3, 4 and 5+ people
            (:data:`SIZE_MIX`, CRTrack-like: mostly 1-4, some general ones).

    Returns:
        (query, sorted matching ids) pairs, ids exactly the people satisfying the query.
        The sizes follow ``mix`` (:func:`size_quota`) as far as the scene's attributes
        allow; a size with no candidate left takes the nearest size that has one (the
        smaller first). Within a size, candidates that refer to the fewest people already
        referred come first, so the expressions spread over the crowd. Queries matching
        everybody are left out.
    """
    pool: dict[str, tuple[Query, tuple[int, ...]]] = {}
    for gid in sorted(people):
        for q in candidate_queries(people[gid]):
            if q.text not in pool:
                ids = tuple(sorted(g for g, a in people.items() if q.matches(a)))
                if len(ids) < len(people) or len(people) == 1:
                    pool[q.text] = (q, ids)
    texts = sorted(pool)
    order = [texts[i] for i in rng.permutation(len(texts))]
    buckets: list[list[str]] = [[] for _ in SIZE_MIX]
    for t in order:
        buckets[_bucket(len(pool[t][1]))].append(t)
    chosen: list[str] = []
    covered: set[int] = set()
    for want in _slots(size_quota(n, mix)):
        near = sorted((b for b in range(len(buckets)) if buckets[b]),
                      key=lambda b: (abs(b - want), b))
        if not near:
            break
        queue = buckets[near[0]]
        pick = min(queue, key=lambda t: len(covered.intersection(pool[t][1])))
        queue.remove(pick)
        chosen.append(pick)
        covered |= set(pool[pick][1])
    return [pool[t] for t in chosen]
