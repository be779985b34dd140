"""Diagnostics of the zero-shot rows of Table 1, read from their own outputs.

GT is read here for evaluation only (the baselines themselves run under the GT guard).
Nothing runs a model: the figures come from the baselines' predictions
(``<pred>/<Scene>_<expression>/View<k>.txt``) and the SAM2 baseline's summary
(``baseline.json``). They answer, for the rows that beat ViewSAM on the embedded default,
the questions :mod:`raysys.report.diagnostics` asks of ViewSAM:

* **proposals** (both rows share them): the concept tracker's person boxes against every
  visible GT person box, recall at IoU 0.5 / 0.3 and precision at 0.5, one-to-one per
  frame (:func:`proposal_scores`). ViewSAM's counterpart is the Candidate Generator's
  proposal recall;
* **cross-view ids** (:func:`identity_scores`): the concept row outputs every tracked
  person under its ReID cluster's id for every expression. Scored the same way with each
  box under the id of the GT person it covers (IoU >= 0.5, one-to-one per frame), the gap
  is what the cross-view clustering loses; ViewSAM's counterpart is ``gt_all`` against
  ``true_ids``;
* **referring** (:func:`referring_scores`, the SAM2 row only: the concept row uses no
  language): the AUC of the text filter's similarity (description of a trajectory against
  the expression) between the trajectories that are the expression's people (at least half
  of their boxes cover one of its GT boxes at IoU >= 0.5) and the others, and how many of
  each the filter keeps. ViewSAM's counterpart is the referring AUC of its proposals;
* **without propagation** (:func:`kept_boxes_score`, the SAM2 row): the trajectories its
  text filter keeps, output with the concept tracker's own boxes instead of SAM2's
  propagated ones (CVR-IDF1 / CVR-MA, All): what the row loses in SAM2's propagation.

The SAM2 baseline's global ids are the concept baseline's (the same tracker, ReID and
clustering on the same frames); :func:`referring_scores` checks that the ids agree and
says so in a ``note`` when they do not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from raysys.eval.pairs import iou_matrix_xyxy

__all__ = ["proposal_scores", "identity_scores", "referring_scores", "kept_boxes_score",
           "zero_shot_diagnostics"]

_IOU = 0.5


def _match(iou: np.ndarray, thr: float) -> list[tuple[int, int]]:
    """One-to-one (row, col) pairs at IoU >= ``thr`` maximising the matched IoU."""
    from scipy.optimize import linear_sum_assignment

    if not iou.size:
        return []
    r, c = linear_sum_assignment(np.where(iou >= thr, iou, 0.0), maximize=True)
    return [(int(i), int(j)) for i, j in zip(r, c, strict=True) if iou[i, j] >= thr]


def _gt_xyxy(rows: np.ndarray) -> np.ndarray:
    return np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1)


def _by_frame(rows: np.ndarray) -> dict[int, np.ndarray]:
    return {int(f): rows[rows[:, 0] == f] for f in np.unique(rows[:, 0])}


def _scene_people(layout, scene: str) -> dict[str, np.ndarray]:
    """GT person rows (frame, id, x1, y1, x2, y2) per view of a scene."""
    from raysys.io.gt import load_scene_tracks

    return {v: np.column_stack([r[:, :2], _gt_xyxy(r)]) if len(r) else np.zeros((0, 6))
            for v, r in load_scene_tracks(layout, scene, "person").items()}


def _first_person_query(layout, pred_root: Path) -> dict[str, object]:
    """One person expression per scene (the concept row predicts the same for all)."""
    from raysys.baselines.zero_shot_concept import _plan

    queries, _, cats = _plan(layout)
    out = {}
    for q in queries:
        if cats[q.name] == "person" and q.scene not in out and (pred_root / q.name).is_dir():
            out[q.scene] = q
    return out


def proposal_scores(layout, pred_root: str | Path) -> dict:
    """Recall at IoU 0.5 / 0.3 and precision at 0.5 of the concept baseline's person boxes
    against every visible GT person box of the split (one-to-one per view-frame)."""
    from raysys.io import crtrack

    pred_root = Path(pred_root)
    hit50 = hit30 = gt_n = pred_n = 0
    for scene, q in sorted(_first_person_query(layout, pred_root).items()):
        gt = _scene_people(layout, scene)
        pred, _ = crtrack.read_expression_pred(pred_root, q.name, list(gt), True)
        for v, g_rows in gt.items():
            p_by = _by_frame(pred[v])
            pred_n += len(pred[v])
            for f, g in _by_frame(g_rows).items():
                p = p_by.get(f, np.zeros((0, 6)))
                iou = iou_matrix_xyxy(g[:, 2:6], p[:, 2:6])
                gt_n += len(g)
                hit50 += len(_match(iou, 0.5))
                hit30 += len(_match(iou, 0.3))
    return {"gt_boxes": gt_n, "boxes": pred_n,
            "recall_iou50": round(hit50 / max(gt_n, 1), 4),
            "recall_iou30": round(hit30 / max(gt_n, 1), 4),
            "precision_iou50": round(hit50 / max(pred_n, 1), 4)}


def _true_id_rows(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` rows with each box under the id of the GT person it covers (IoU >= 0.5,
    one-to-one per frame); a box that covers none gets an id of its own."""
    out = pred.copy()
    g_by = _by_frame(gt)
    fresh = 10 ** 9
    for f in np.unique(pred[:, 0]):
        sel = np.flatnonzero(pred[:, 0] == f)
        g = g_by.get(int(f), np.zeros((0, 6)))
        pairs = dict((i, j) for i, j in _match(iou_matrix_xyxy(pred[sel, 2:6], g[:, 2:6]), _IOU))
        for k, i in enumerate(sel):
            if k in pairs:
                out[i, 1] = g[pairs[k], 1]
            else:
                fresh += 1
                out[i, 1] = fresh
    return out


def identity_scores(layout, pred_root: str | Path) -> dict:
    """CVR-IDF1 / CVR-MA (All) of the concept baseline over the split's person expressions
    with its own ids (``own_ids``: Table 1's figure on those expressions) and with each box
    under its GT person's id (``true_ids``)."""
    from raysys.baselines.zero_shot_concept import _plan
    from raysys.eval.crtrack_eval import aggregate, evaluate_expression
    from raysys.io import crtrack

    pred_root = Path(pred_root)
    queries, _, cats = _plan(layout)
    own, true, gts = {}, {}, {}
    for q in queries:
        if cats[q.name] != "person" or not (pred_root / q.name).is_dir():
            continue
        if q.scene not in gts:
            gts[q.scene] = _scene_people(layout, q.scene)
        egt = crtrack.read_expression_gt(layout.gt_root, q.name)
        pred, _ = crtrack.read_expression_pred(pred_root, q.name, list(egt), True)
        own[q.name] = evaluate_expression(egt, pred)
        true[q.name] = evaluate_expression(egt, {v: _true_id_rows(
            pred[v], gts[q.scene].get(v, np.zeros((0, 6)))) for v in egt})
    if not own:
        return {"expressions": 0, "note": "no person expression predicted"}
    a, b = aggregate(own)["All"], aggregate(true)["All"]
    return {"expressions": len(own),
            "own_ids": {"CVR-IDF1": a["CVR-IDF1"], "CVR-MA": a["CVR-MA"]},
            "true_ids": {"CVR-IDF1": b["CVR-IDF1"], "CVR-MA": b["CVR-MA"]},
            "gap": round(float(b["CVR-IDF1"]) - float(a["CVR-IDF1"]), 2)}


def referring_scores(layout, concept_pred: str | Path, sam2_summary: dict) -> dict:
    """The SAM2 baseline's text filter against the expressions' people (module doc)."""
    from raysys.io import crtrack
    from raysys.report.diagnostics import auc

    concept_pred = Path(concept_pred)
    sims = sam2_summary.get("similarities")
    if not sims:
        return {"auc": None, "note": "the SAM2 baseline's summary has no similarities "
                                     "(made before 2026-12-06: run it again)"}
    kept = sam2_summary.get("kept", {})
    pos: list[float] = []
    neg: list[float] = []
    counts = {"referred": 0, "others": 0, "referred_kept": 0, "others_kept": 0}
    mismatched = []
    for name, s in sorted(sims.items()):
        if not s or not (concept_pred / name).is_dir():
            continue
        egt = crtrack.read_expression_gt(layout.gt_root, name)
        pred, _ = crtrack.read_expression_pred(concept_pred, name, list(egt), True)
        traj_ids = {int(i) for r in pred.values() for i in r[:, 1]}
        if {int(g) for g in s} != traj_ids:
            mismatched.append(name)
            continue
        hits: dict[int, list[int]] = {}
        for v, rows in pred.items():
            g = egt[v]
            g_by = _by_frame(np.column_stack([g[:, :2], _gt_xyxy(g)]) if len(g)
                             else np.zeros((0, 6)))
            for f in np.unique(rows[:, 0]):
                p = rows[rows[:, 0] == f]
                g = g_by.get(int(f), np.zeros((0, 6)))
                covered = {i for i, _ in _match(iou_matrix_xyxy(p[:, 2:6], g[:, 2:6]), _IOU)}
                for k, gid in enumerate(p[:, 1].astype(int)):
                    hits.setdefault(int(gid), []).append(int(k in covered))
        keep = {int(g) for g in kept.get(name, {})}
        for g, sim in s.items():
            g = int(g)
            referred = bool(hits.get(g)) and np.mean(hits[g]) >= 0.5
            (pos if referred else neg).append(float(sim))
            key = "referred" if referred else "others"
            counts[key] += 1
            counts[key + "_kept"] += int(g in keep)
    a = auc(pos, neg)
    out = {"auc": None if a is None else round(a, 4),
           "expressions": len(sims) - len(mismatched), **counts}
    if mismatched:
        out["note"] = (f"{len(mismatched)} expressions left out: their trajectory ids differ "
                       "from the concept baseline's (other tracklets?)")
    return out


def kept_boxes_score(layout, concept_pred: str | Path, sam2_summary: dict) -> dict | None:
    """CVR-IDF1 / CVR-MA (All) of the SAM2 baseline's kept trajectories with the concept
    baseline's boxes (no SAM2 propagation); None without the summary's ``kept``."""
    from raysys.eval.crtrack_eval import aggregate, evaluate_expression
    from raysys.io import crtrack

    kept = sam2_summary.get("kept")
    if not kept:
        return None
    concept_pred = Path(concept_pred)
    res = {}
    for name, ids in sorted(kept.items()):
        if not (concept_pred / name).is_dir():
            continue
        egt = crtrack.read_expression_gt(layout.gt_root, name)
        pred, _ = crtrack.read_expression_pred(concept_pred, name, list(egt), True)
        keep = [int(g) for g in ids]
        res[name] = evaluate_expression(egt, {v: r[np.isin(r[:, 1].astype(int), keep)]
                                              for v, r in pred.items()})
    if not res:
        return None
    a = aggregate(res)["All"]
    return {"CVR-IDF1": a["CVR-IDF1"], "CVR-MA": a["CVR-MA"], "expressions": len(res)}


def zero_shot_diagnostics(layout, concept_pred: str | Path,
                          sam2_pred: str | Path | None = None) -> dict:
    """``{"zero_shot_concept": {...}, "zero_shot_sam2": {...}}``: proposals, cross-view ids
    and (SAM2 row) referring of the zero-shot rows on ``layout`` (module doc)."""
    concept_pred = Path(concept_pred)
    props = proposal_scores(layout, concept_pred)
    ident = identity_scores(layout, concept_pred)
    out = {"zero_shot_concept": {"proposals": props, "ids": ident,
                                 "referring": {"auc": None, "note": "no language: every "
                                               "person is output for every expression"}}}
    if sam2_pred is not None:
        f = Path(sam2_pred) / "baseline.json"
        summary = json.loads(f.read_text()) if f.is_file() else {}
        out["zero_shot_sam2"] = {"proposals": props,
                                 "referring": referring_scores(layout, concept_pred, summary),
                                 "kept_boxes": kept_boxes_score(layout, concept_pred, summary)}
    return out
