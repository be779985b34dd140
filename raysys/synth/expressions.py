"""Referring expressions composed from people's attributes, in CRTrack's phrasing.

A :class:`Query` is a conjunction of attribute constraints; its text follows CRTrack
("A person wearing a red coat and black trousers", "A person in a black helmet, blue coat
and gray trousers, riding a bicycle", "A person in a white cap, black coat and gray
trousers, carrying a backpack") and it refers to *every* person whose attributes satisfy
it. For each scene we enumerate candidate queries from each person's attributes at several
levels of detail and pick a mix of specific (one person) and general (several people)
ones; no two have the same text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from raysys.synth.attributes import PersonAttributes

__all__ = ["Query", "candidate_queries", "select_expressions"]


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


def select_expressions(rng: np.random.Generator, people: Mapping[int, PersonAttributes],
                       n: int) -> list[tuple[Query, tuple[int, ...]]]:
    """Pick up to ``n`` distinct expressions and the ids each refers to.

    Args:
        rng: the scene's random generator.
        people: global id -> attributes of the people that can be referred to (those
            visible in at least one view).
        n: how many expressions to return (fewer when the attributes do not allow).

    Returns:
        (query, sorted matching ids) pairs, ids exactly the people satisfying the query.
        About half are specific (one id); queries matching everybody are left out.
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
    specific = [t for t in order if len(pool[t][1]) == 1]
    general = [t for t in order if len(pool[t][1]) > 1]
    chosen: list[str] = []
    covered: set[int] = set()
    # alternate specific / general, preferring candidates that refer to someone new
    queues = [specific, general]
    turn = 0
    while len(chosen) < n and (specific or general):
        q = queues[turn % 2] or queues[(turn + 1) % 2]
        turn += 1
        pick = next((t for t in q if not set(pool[t][1]) <= covered), q[0])
        q.remove(pick)
        chosen.append(pick)
        covered |= set(pool[pick][1])
    return [pool[t] for t in chosen]
