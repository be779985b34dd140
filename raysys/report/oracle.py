"""The ViewSAM tracker with oracle proposals: where the tracker loses CVR-IDF1.

GT is read here for evaluation only (the oracle proposals are its boxes); training never
sees it. :func:`track_oracle_modes` tracks expressions of a split with
:func:`raysys.tracking.run.track_unit` and scores them (CVR-IDF1 / CVR-MA, All):

* ``model``: the checkpoint as it is (the Candidate Generator's proposals and referring);
* ``gt_boxes``: every visible GT object's box as the proposals (objectness 1), referring
  probabilities from the model's matching branch on those boxes (a perfect detector);
* ``gt_referred``: the same boxes, referring 1 for the referred objects and 0 for the
  others (perfect detection and referring: SAM2's memory, the tracks and the CGCT ids left);
* ``gt_all``: every visible GT object's box with referring 1 (every object output for
  every expression): with all of them the cross-view ids are hard, so this isolates the
  CGCT identities. Its reference, :func:`true_id_reference`, is every GT object under its
  true id (what perfect identities would score with the same boxes).

With ``breakdown``, each mode also says where every referred GT box went
(:func:`referred_bucket`): output, or lost for want of a proposal, of referring, of
objectness, or with a proposal that passed both (a live track held it, ``max_tracks``, or
the track's mean referring below ``min_refer``).

:func:`identity_oracle` is the report's diagnostic: ``gt_all`` on people against that
reference (:mod:`raysys.report.diagnostics`). ``benchmarks/diagnostics/track_oracle.py``
is the command line of all four modes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

__all__ = ["MODES", "BUCKETS", "referred_bucket", "gt_index", "oracle_proposals",
           "spread_units", "true_id_reference", "track_oracle_modes", "identity_oracle"]

MODES = ("model", "gt_boxes", "gt_referred", "gt_all")
# where a referred GT box of a view-frame went (referred_bucket)
BUCKETS = ("output", "no_proposal", "refer_below", "objectness_below", "not_output")


def gt_index(layout, scene: str, views: Sequence[str], category: str | None = None
             ) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """``{(frame, view_index): (ids (n,), boxes (n, 4) xyxy)}`` of every GT object of a
    scene (``category``: only that one, e.g. ``"person"``)."""
    from raysys.io.gt import load_scene_tracks

    tracks = load_scene_tracks(layout, scene, category)
    out = {}
    for k, v in enumerate(views):
        rows = tracks.get(v, np.zeros((0, 6)))
        for f in np.unique(rows[:, 0]).astype(int):
            r = rows[rows[:, 0] == f]
            xyxy = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], 1)
            out[(int(f), k)] = (r[:, 1].astype(int), xyxy)
    return out


def oracle_proposals(mode: str, gt: dict, referred: set):
    """The tracker's external proposal function ``fn(frame, view_index)`` of one expression
    for ``mode`` (None for ``"model"``: the model's own). ``referred``: the
    ``(frame, view_index, id)`` of the expression's GT."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "model":
        return None

    def fn(frame: int, k: int):
        ids, boxes = gt.get((frame, k), (np.zeros(0, int), np.zeros((0, 4))))
        if mode == "gt_boxes":
            return boxes, None, None
        if mode == "gt_all":
            return boxes, np.ones(len(ids), dtype=np.float32), None
        ref = np.asarray([(frame, k, int(i)) in referred for i in ids], dtype=np.float32)
        return boxes, ref, None

    return fn


def spread_units(units: list, n: int) -> list:
    """``n`` of ``units`` spread evenly over the list, first and last included (all of them
    when ``n`` is 0 or at least their number)."""
    if not n or n >= len(units):
        return list(units)
    return [units[i] for i in np.linspace(0, len(units) - 1, n).round().astype(int)]


def _referred(egt: dict, views: Sequence[str]) -> set:
    return {(int(r[0]), k, int(r[1])) for k, v in enumerate(views)
            for r in egt.get(v, np.zeros((0, 6)))}


def true_id_reference(layout, units: list, gts: dict) -> dict:
    """Every GT object of ``gts[scene]`` output under its true id for every expression of
    ``units``, scored against the expression's GT (All CVR-IDF1 / CVR-MA)."""
    from raysys.eval.crtrack_eval import aggregate, evaluate_expression
    from raysys.io import crtrack

    res = {}
    for u in units:
        egt = crtrack.read_expression_gt(layout.gt_root, u.name)
        g = gts[u.scene]
        rows = {v: np.array([[f, i, *b] for (f, k), (ids, bs) in g.items() if k == kv
                             for i, b in zip(ids, bs, strict=True)]).reshape(-1, 6)
                for kv, v in enumerate(u.views)}
        res[u.name] = evaluate_expression(egt, {v: rows[v] for v in egt})
    agg = aggregate(res)["All"]
    return {"CVR-IDF1": agg["CVR-IDF1"], "CVR-MA": agg["CVR-MA"]}


def referred_bucket(box, outputs, proposals, thresholds: tuple[float, float],
                    iou: float = 0.5) -> str:
    """Where one referred GT box (xyxy) of a view-frame went (one of :data:`BUCKETS`).

    Args:
        outputs: ``(n, 4)`` the tracker's output boxes there (xyxy).
        proposals: ``(boxes (k, 4) xyxy, refer (k,), objectness (k,))`` it decided from.
        thresholds: the refer and objectness thresholds in use.
    Returns ``output`` where an output box overlaps it with IoU >= ``iou``; else, over the
    proposals overlapping it that much: ``no_proposal`` (none), ``not_output`` (one passes
    both thresholds), ``objectness_below`` (one passes the refer threshold), else
    ``refer_below``.
    """
    from raysys.eval.pairs import iou_matrix_xyxy

    if len(outputs) and float(iou_matrix_xyxy(box, outputs).max()) >= iou:
        return "output"
    boxes, refer, obj = proposals
    near = iou_matrix_xyxy(box, boxes)[0] >= iou
    if not near.any():
        return "no_proposal"
    ref_ok = np.asarray(refer)[near] >= thresholds[0]
    obj_ok = np.asarray(obj)[near] >= thresholds[1]
    if (ref_ok & obj_ok).any():
        return "not_output"
    return "objectness_below" if ref_ok.any() else "refer_below"


def _count_buckets(counts: dict, egt: dict, rows: dict, views: Sequence[str],
                   props: dict, thresholds: tuple[float, float]) -> None:
    none = (np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    for k, v in enumerate(views):
        pred = np.asarray(rows.get(v, np.zeros((0, 6)))).reshape(-1, 6)
        for r in egt.get(v, np.zeros((0, 6))):
            f = int(r[0])
            box = np.array([r[2], r[3], r[2] + r[4], r[3] + r[5]])
            b = referred_bucket(box, pred[pred[:, 0] == f, 2:6], props.get((f, k), none),
                                thresholds)
            counts[b] += 1


def track_oracle_modes(model, layout, units: list, modes: Sequence[str], cfg, gts: dict,
                       progress: bool = False, breakdown: bool = False) -> dict:
    """Track ``units`` in each of ``modes`` with TrackConfig ``cfg``; returns mode ->
    ``{"CVR-IDF1", "CVR-MA", "seconds", "frame_sets_per_s"}`` (with ``breakdown``, also
    ``"referred_boxes"``: the count of referred GT boxes per bucket of :data:`BUCKETS`)."""
    from tqdm.auto import tqdm

    from raysys.eval.crtrack_eval import aggregate, evaluate_expression
    from raysys.io import crtrack
    from raysys.tracking.config import decision_thresholds
    from raysys.tracking.run import track_unit

    thresholds = decision_thresholds(cfg, getattr(model, "calibration", None))[:2]
    out = {}
    for mode in modes:
        t0, frames, results = time.perf_counter(), 0, {}
        counts = dict.fromkeys(BUCKETS, 0)
        for u in tqdm(units, desc=mode, disable=not progress):
            egt = crtrack.read_expression_gt(layout.gt_root, u.name)
            fn = oracle_proposals(mode, gts[u.scene], _referred(egt, u.views))
            props: dict = {}
            hook = (lambda f, e, k, b, r, o, p=props: p.__setitem__((f, k), (b, r, o))) \
                if breakdown else None
            rows, n = track_unit(model, layout, u, cfg, fn, hook)
            frames += n
            results[u.name] = evaluate_expression(egt, {v: rows[v] for v in egt})
            if breakdown:
                _count_buckets(counts, egt, rows, u.views, props, thresholds)
        agg, dt = aggregate(results)["All"], time.perf_counter() - t0
        out[mode] = {"CVR-IDF1": agg["CVR-IDF1"], "CVR-MA": agg["CVR-MA"],
                     "seconds": round(dt, 1), "frame_sets_per_s": round(frames / dt, 2)}
        if breakdown:
            out[mode]["referred_boxes"] = counts
    return out


def identity_oracle(model, layout, units: int = 1, category: str = "person") -> dict:
    """Cross-view ids with perfect boxes: ``gt_all`` (every GT ``category`` box given,
    referring 1) on ``units`` expressions spread over the split, and ``true_ids``, the same
    objects under their true ids. The tracker may keep a track per GT object
    (``max_tracks`` raised to the most objects of a view-frame)."""
    from raysys.tracking.config import TrackConfig
    from raysys.tracking.run import plan_track_units

    todo = spread_units(plan_track_units(layout), units)
    gts = {u.scene: gt_index(layout, u.scene, u.views, category) for u in todo}
    most = max([len(ids) for g in gts.values() for ids, _ in g.values()] or [1])
    cfg = replace(TrackConfig(), max_tracks=max(TrackConfig().max_tracks, most))
    got = track_oracle_modes(model, layout, todo, ["gt_all"], cfg, gts)["gt_all"]
    ref = true_id_reference(layout, todo, gts)
    gap = None if got["CVR-IDF1"] is None or ref["CVR-IDF1"] is None else \
        round(ref["CVR-IDF1"] - got["CVR-IDF1"], 2)
    return {"gt_all": got, "true_ids": ref, "gap": gap, "units": len(todo),
            "category": category, "max_tracks": cfg.max_tracks}
