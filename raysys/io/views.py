"""The camera index of a view: one rule for training and tracking.

ViewSAM's view token (Eq. 3) keeps one learned base embedding per camera slot, indexed by a
view id. Training (:mod:`raysys.training.data`) and the tracker (:mod:`raysys.tracking`)
both number a scene's views with :func:`view_ids`, so a camera gets the same embedding in
both.

The rule, over all the views of a scene:

* every name ends in a number and the numbers are distinct (``View1``, ``View3``,
  ``View7``): the id is that number minus one (``0, 2, 6``), or the number itself when one
  of them is 0. A camera keeps its id when another view of the scene is missing.
* otherwise (a name without a number, two names with one number): the id is the position
  of the name in the scene's views sorted by :func:`raysys.io.crtrack.view_sort_key`.

Ids must lie below the model's camera slots (``ViewTokenConfig.num_views``, 8); the view
token raises otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from raysys.io.crtrack import view_sort_key

__all__ = ["view_ids", "view_id_map"]

_NUMBER = re.compile(r"(\d+)$")


def view_id_map(scene_views: Sequence[str]) -> dict[str, int]:
    """``{view name: id}`` for every view of a scene (the rule in the module docstring).

    Args:
        scene_views: all the views of one scene (any order; duplicates are an error).
    """
    names = list(scene_views)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate view names: {names}")
    nums = [_NUMBER.search(v) for v in names]
    if all(nums) and len({int(m.group(1)) for m in nums}) == len(names):
        vals = [int(m.group(1)) for m in nums]
        shift = 1 if min(vals, default=1) >= 1 else 0
        return {v: n - shift for v, n in zip(names, vals, strict=True)}
    return {v: i for i, v in enumerate(sorted(names, key=view_sort_key))}


def view_ids(views: Sequence[str], scene_views: Sequence[str] | None = None) -> list[int]:
    """Ids of ``views``, numbered within ``scene_views`` (default: ``views`` themselves).

    Pass the scene's full view list when ``views`` is a subset of it (a single-view training
    sample, ``max_views``), so that a view's id does not depend on which others came along.
    """
    table = view_id_map(views if scene_views is None else scene_views)
    missing = [v for v in views if v not in table]
    if missing:
        raise ValueError(f"views {missing} are not among the scene's views {list(scene_views)}")
    return [table[v] for v in views]
