"""Stage-wise quality of pseudo labels against GT, like the paper's Table 4.

* identity level: per scene, all pseudo trajectories of a category against all GT objects
  of that category, scored as one "expression" (CVR-IDF1 / CVR-MA), averaged over scenes;
* referring level: for each GT expression, the pseudo expression of the same scene whose
  text embedding is most similar; its trajectories are scored against the GT expression;
  averaged over GT expressions (like "All"), with the mean best similarity.

Reads GT: evaluation only, never called by the labeling pipeline itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from raysys.eval import evaluate_expression
from raysys.io import crtrack, storage
from raysys.io.dataset import DatasetLayout
from raysys.io.gt import load_scene_tracks
from raysys.labeling.scene_stage import STAGES, read_stage, stage_path

__all__ = ["quality_report", "format_quality", "pred_rows"]


def pred_rows(rows, views, gids=None, category=None) -> dict[str, np.ndarray]:
    """Stage rows ``(global id, tracklet)`` as CRTrack prediction rows per view, optionally
    only the identities ``gids`` and the objects of ``category``."""
    out = {v: [] for v in views}
    for g, t in rows:
        if (gids is not None and g not in gids) or (category and t.category != category):
            continue
        xyxy = np.column_stack([t.boxes[:, :2], t.boxes[:, :2] + t.boxes[:, 2:]])
        out.setdefault(t.view, []).append(
            np.column_stack([t.frames, np.full(len(t), g), xyxy]))
    return {v: (np.concatenate(r) if r else np.zeros((0, 6))) for v, r in out.items()}


def _mean(results: list) -> dict:
    if not results:
        return {"CVR-IDF1": None, "CVR-MA": None, "n": 0}
    return {"CVR-IDF1": float(np.mean([r.cvr_idf1 for r in results])),
            "CVR-MA": float(np.mean([r.cvr_ma for r in results])), "n": len(results)}


def quality_report(label_out: str | Path, layout: DatasetLayout, category: str = "person",
                   text_embedder=None) -> dict:
    """Score every stage of a labeling output; writes ``<label_out>/quality.json``.

    Raises:
        ValueError: the labels were not made from ``layout`` as it is now
            (:func:`raysys.labeling.record.check_labels_match`): scoring them against
            another dataset's GT would be meaningless.
    """
    from raysys.io.tables import read_table, table_to_expressions
    from raysys.labeling.record import check_labels_match

    label_out = storage.path(label_out)
    check_labels_match(label_out, layout)
    scenes = sorted(p.name for p in (label_out / "scenes").iterdir() if p.is_dir())
    gt_tracks = {s: load_scene_tracks(layout, s, category) for s in scenes}
    stage_rows = {st: {s: read_stage(stage_path(label_out, s, st)) for s in scenes}
                  for st in STAGES}
    identity, ceiling, per_view = {}, [], {}
    for st in STAGES:
        res = []
        for s in scenes:
            gt = gt_tracks[s]
            pred = pred_rows(stage_rows[st][s], list(gt), category=category)
            res.append(evaluate_expression(gt, pred))
            for v in gt:  # boxes of one camera, identities aside: where the boxes fail
                c = evaluate_expression({v: gt[v]}, {v: pred[v]}).clear
                per_view.setdefault(f"{s}/{v}", {})[st] = {
                    "recall": c.tp / c.n_gt if c.n_gt else None,
                    "precision": c.tp / c.n_pred if c.n_pred else None}
        identity[st] = _mean(res)
        if st == "tracklets":  # what the tracklets' boxes allow with perfect identities:
            # every box the evaluator matches to a GT box (IoU >= 0.5) with the right id
            ceiling = [200.0 * r.clear.tp / max(r.clear.n_gt + r.clear.n_pred, 1)
                       for r in res]
    if text_embedder is None:
        from raysys.backends import build_text_embedder

        text_embedder = build_text_embedder("minilm")
    gt_exprs = [e for e in crtrack.list_expressions(layout.gt_root) if e.scene in scenes]
    gt_emb = text_embedder.embed([e.text for e in gt_exprs]) if gt_exprs else None
    referring: dict = {}
    for st in STAGES:
        pseudo = table_to_expressions(
            read_table(label_out / "stages" / st / "expressions.parquet"))
        res, sims = [], []
        p_emb = text_embedder.embed([p.text for p in pseudo]) if pseudo else None
        for k, e in enumerate(gt_exprs):
            gt = crtrack.read_expression_gt(layout.gt_root, e.name)
            cand = [i for i, p in enumerate(pseudo) if p.scene == e.scene]
            if not cand:
                res.append(evaluate_expression(gt, {v: np.zeros((0, 6)) for v in gt}))
                continue
            s = p_emb[cand] @ gt_emb[k]
            best = cand[int(np.argmax(s))]
            sims.append(float(s.max()))
            pred = pred_rows(stage_rows[st][e.scene], list(gt), set(pseudo[best].global_ids))
            res.append(evaluate_expression(gt, pred))
        referring[st] = {**_mean(res), "similarity": float(np.mean(sims)) if sims else None}
    report = {
        "identity": identity,
        "referring": {**{st: {k: v for k, v in referring[st].items() if k != "similarity"}
                         for st in STAGES},
                      "similarity": referring["reprompt"]["similarity"],
                      "similarity_per_stage": {st: referring[st]["similarity"]
                                               for st in STAGES}},
        "ceiling": {"CVR-IDF1": float(np.mean(ceiling)) if ceiling else None},
        "per_view": per_view,
        "scenes": len(scenes), "gt_expressions": len(gt_exprs), "category": category,
    }
    crtrack.atomic_write_text(label_out / "quality.json", json.dumps(report, indent=2))
    return report


def format_quality(report: dict) -> str:
    """The report as a table: one row per stage, identity and referring columns."""
    names = {"tracklets": "single-view tracklets", "association": "+ association",
             "reprompt": "+ association + re-prompting"}

    def f(x):
        return "   n/a" if x is None else f"{x:6.2f}"

    lines = [f"{'stage':32s} {'identity IDF1':>14s} {'identity MA':>12s} "
             f"{'referring IDF1':>15s} {'referring MA':>13s}"]
    for st in STAGES:
        i, r = report["identity"][st], report["referring"][st]
        lines.append(f"{names[st]:32s} {f(i['CVR-IDF1']):>14s} {f(i['CVR-MA']):>12s} "
                     f"{f(r['CVR-IDF1']):>15s} {f(r['CVR-MA']):>13s}")
    ceil = report.get("ceiling", {}).get("CVR-IDF1")
    if ceil is not None:
        lines.append(f"identity IDF1 the tracklets' boxes allow with perfect ids: {ceil:6.2f}")
    sim = report["referring"]["similarity"]
    lines.append(f"mean text similarity of matched expressions: "
                 f"{'n/a' if sim is None else f'{sim:.3f}'}")
    per_view = report.get("per_view")
    if per_view:
        lines.append("")
        lines.append("boxes per camera (IoU >= 0.5 with a GT box, identities aside), "
                     "recall / precision:")
        short = {"tracklets": "tracklets", "association": "+ association",
                 "reprompt": "+ re-prompting"}
        lines.append(f"{'scene/view':32s} " + " ".join(f"{short[st]:>16s}" for st in STAGES))
        for key in sorted(per_view):
            cells = []
            for st in STAGES:
                c = per_view[key].get(st, {})
                r, p = c.get("recall"), c.get("precision")
                cells.append(f"{'n/a' if r is None else f'{r:.2f}':>7s} / "
                             f"{'n/a' if p is None else f'{p:.2f}':<6s}")
            lines.append(f"{key:32s} " + " ".join(f"{x:>16s}" for x in cells))
    return "\n".join(lines)
