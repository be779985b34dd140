"""Statistics of a CRMOT benchmark split, from its ground truth only.

What makes language matter in a split: how many people a scene holds, how many of them an
expression refers to, and what "say everyone" scores. Works on any dataset in the CRTrack
layout (a user's CRTrack copy, where only the GT of the expressions exists, and the
generated benchmark, whose ``meta/`` also lists every person of a scene).

The **everyone reference**: for every expression, predict the union of the GT objects of
all expressions of its scene, under their true ids, in every view and frame; score it with
the project's evaluator (:func:`raysys.eval.crtrack_eval.evaluate_expression`). It is what
a method that tracks and identifies perfectly but ignores the sentence would score. On
CRTrack's In-domain test it is 18.70 CVR-IDF1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from raysys.eval.crtrack_eval import aggregate, evaluate_expression
from raysys.io import crtrack
from raysys.io.dataset import DatasetLayout

__all__ = ["SceneStats", "SplitStats", "split_stats", "everyone_predictions",
           "format_stats"]


@dataclass
class SceneStats:
    scene: str
    expressions: int  # referring expressions of the scene
    views: int  # cameras
    frames: int  # frames per view (the largest GT frame number seen)
    referred_people: int  # distinct ids referred by at least one expression
    people: int | None  # every person of the scene (generated data's meta/); None: unknown
    referred_per_expression: list[int]  # ids each expression refers to, in folder order


@dataclass
class SplitStats:
    domain: str
    split: str
    scenes: list[SceneStats] = field(default_factory=list)
    referred_per_expression: dict = field(default_factory=dict)  # mean, median, max
    expressions_per_scene: dict = field(default_factory=dict)  # min, mean, max
    referred_share: float | None = None  # people referred by >= 1 expression / people
    box_height: float | None = None  # mean GT box height (pixels), referred people
    visible_fraction: float | None = None  # mean over (referred person, view) of the
    #   fraction of the view's frames in which the person is in the GT
    everyone: dict = field(default_factory=dict)  # {"All": {...}, "scenes": {...}}

    def to_json(self) -> dict:
        return asdict(self)


def _scene_union(gt: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per view, the union of the GT rows ``(n, 6)`` of several expressions (one row per
    (frame, id))."""
    out: dict[str, np.ndarray] = {}
    for rows_by_view in gt.values():
        for view, rows in rows_by_view.items():
            rows = np.asarray(rows, dtype=np.float64).reshape(-1, rows.shape[-1])[:, :6]
            out[view] = rows if view not in out else np.concatenate([out[view], rows])
    for view, rows in out.items():
        _, first = np.unique(rows[:, :2].astype(np.int64), axis=0, return_index=True)
        out[view] = rows[np.sort(first)]
    return out


def everyone_predictions(union: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """GT rows ``frame, id, left, top, width, height`` as predictions ``frame, id, x1, y1,
    x2, y2`` (the evaluator's prediction format)."""
    pred = {}
    for view, rows in union.items():
        p = rows[:, :6].astype(np.float64).copy()
        p[:, 4] = p[:, 2] + p[:, 4]
        p[:, 5] = p[:, 3] + p[:, 5]
        pred[view] = p
    return pred


def _people_in_meta(layout: DatasetLayout, scene: str) -> int | None:
    from raysys.io.gt import load_objects

    try:
        objects = load_objects(layout, scene)
    except FileNotFoundError:
        return None
    return sum(1 for o in objects if o.get("category", "person") == "person")


def split_stats(layout: DatasetLayout) -> SplitStats:
    """Statistics of one (domain, split): see the module doc. Reads GT only.

    Raises:
        FileNotFoundError: no GT folder for the split.
    """
    if not layout.gt_root.is_dir():
        raise FileNotFoundError(
            f"no GT for {layout.domain}/{layout.split}: expected {layout.gt_root} (the CRTrack "
            "layout: <data>/<domain>/gt/sorted_gt_<split>_<domain>/<Scene>_<expression>/)")
    by_scene: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for e in crtrack.list_expressions(layout.gt_root):
        by_scene.setdefault(e.scene, {})[e.name] = crtrack.read_expression_gt(
            layout.gt_root, e.name)
    out = SplitStats(layout.domain, layout.split)
    heights, visible, results = [], [], {}
    referred_total = people_total = 0
    for scene, gt in sorted(by_scene.items()):
        union = _scene_union(gt)
        views = sorted({v for rows in gt.values() for v in rows}, key=crtrack.view_sort_key)
        frames = int(max((r[:, 0].max() for r in union.values() if len(r)), default=0))
        per_expr = [len({int(i) for rows in g.values() for i in rows[:, 1]}) for g in gt.values()]
        ids = {int(i) for r in union.values() for i in r[:, 1]}
        people = _people_in_meta(layout, scene)
        out.scenes.append(SceneStats(scene, len(gt), len(views), frames, len(ids), people,
                                     per_expr))
        if people:
            referred_total += len(ids)
            people_total += people
        for view in views:
            rows = union.get(view, np.zeros((0, 6)))
            heights += rows[:, 5].tolist()
            for i in ids:
                visible.append(float((rows[:, 1] == i).sum()) / max(frames, 1))
        pred = everyone_predictions(union)
        for name, g in gt.items():
            results[name] = evaluate_expression(g, pred)
    per = [n for s in out.scenes for n in s.referred_per_expression]
    eps = [s.expressions for s in out.scenes]
    out.referred_per_expression = {"mean": float(np.mean(per)) if per else None,
                                   "median": float(np.median(per)) if per else None,
                                   "max": int(max(per, default=0))}
    out.expressions_per_scene = {"min": int(min(eps, default=0)),
                                 "mean": float(np.mean(eps)) if eps else None,
                                 "max": int(max(eps, default=0))}
    out.referred_share = referred_total / people_total if people_total else None
    out.box_height = float(np.mean(heights)) if heights else None
    out.visible_fraction = float(np.mean(visible)) if visible else None
    out.everyone = aggregate(results) if results else {}
    return out


def _f(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def format_stats(st: SplitStats) -> str:
    """A readable table of :func:`split_stats`."""
    lines = [f"{st.domain} / {st.split}",
             f"{'scene':14s} {'expr':>5s} {'views':>5s} {'frames':>6s} {'people':>7s} "
             f"{'referred':>8s} {'per expr (mean/med/max)':>24s} {'everyone':>9s}"]
    ev = st.everyone.get("scenes", {})
    for s in st.scenes:
        per = s.referred_per_expression
        lines.append(
            f"{s.scene:14s} {s.expressions:5d} {s.views:5d} {s.frames:6d} "
            f"{'-' if s.people is None else s.people:>7} {s.referred_people:8d} "
            f"{np.mean(per):>10.1f} / {np.median(per):4.1f} / {max(per):3d}    "
            f"{_f((ev.get(s.scene) or {}).get('CVR-IDF1')):>9s}")
    r, e = st.referred_per_expression, st.expressions_per_scene
    share = ("- (no per-scene person list)" if st.referred_share is None
             else f"{st.referred_share:.0%}")
    lines += [
        f"referred people per expression: mean {_f(r['mean'])}, median {_f(r['median'], 1)}, "
        f"max {r['max']}",
        f"expressions per scene: {e['min']} to {e['max']} (mean {_f(e['mean'], 1)})",
        f"people referred by >= 1 expression: {share}",
        f"mean box height {_f(st.box_height, 1)} px; visible fraction {_f(st.visible_fraction)}",
        f"everyone, true ids (no language): CVR-IDF1 "
        f"{_f((st.everyone.get('All') or {}).get('CVR-IDF1'))}, CVR-MA "
        f"{_f((st.everyone.get('All') or {}).get('CVR-MA'))}",
    ]
    return "\n".join(lines)
