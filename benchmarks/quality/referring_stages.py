"""Why does a stage's referring CVR-IDF1 differ from another's? Per-stage diagnostics.

Reads a labeling output (``raysys label --out L``) and its dataset's GT (evaluation only).
For every stage it prints, besides the referring CVR-IDF1 of ``raysys quality``:

* ``oracle``: the referring CVR-IDF1 if each GT expression were given exactly the stage's
  trajectories whose boxes mostly belong to one of its GT people (perfect descriptions and
  grouping): what the trajectories allow;
* ``top_ok`` / ``bottom_ok``: share of trajectories (matched to a GT person) whose full
  description names that person's GT coat / trousers colour;
* ``mixed``: trajectories whose boxes are less than 80% one GT person (merged identities
  or re-propagation drifting onto someone else), and ``unmatched`` ones (no GT person);
* ``chosen_prec`` / ``chosen_rec``: over GT expressions, the share of the chosen pseudo
  expression's trajectories that are the expression's people, and of its people covered.

``--merges`` adds ``reprompt_gone``: every association identity that re-prompting ended
(``raysys/labeling/reprompt.py``), with its GT person and where it went: merged into
another identity (both live on in one re-prompt identity, matched by boxes; right when
both are mostly the same GT person) or dropped (``min_views``). Before 2026-12-05 (stop
35) identities were matched by number, which re-prompting renumbers: its counts of wrong
merges were wrong.

    .venv/bin/python benchmarks/quality/referring_stages.py --data D --labels L \
        [--split train] [--domain In-domain] [--per-expression] [--merges]
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np


def _gt_owner(rows, gt_by_view):
    """(gt id or None, purity) of one trajectory's rows [(view, tracklet)]."""
    from raysys.eval.pairs import iou_xywh

    votes, n = Counter(), 0
    for v, t in rows:
        g = gt_by_view.get(v)
        if g is None or not len(g):
            n += len(t)
            continue
        for f, b in zip(t.frames.tolist(), t.boxes, strict=True):
            n += 1
            cand = g[g[:, 0] == f]
            if not len(cand):
                continue
            iou = iou_xywh(np.repeat(np.asarray(b, float)[None], len(cand), 0), cand[:, 2:6])
            k = int(np.argmax(iou))
            if iou[k] >= 0.5:
                votes[int(cand[k, 1])] += 1
    if not votes:
        return None, 0.0
    gid, c = votes.most_common(1)[0]
    return gid, c / max(n, 1)


def _names_colour(text: str, colour: str | None, garment: str) -> bool | None:
    if not colour:
        return None
    m = re.search(r"([a-z]+(?: and [a-z]+)?) " + garment, text.lower())
    return bool(m) and colour in m.group(1).split(" and ")


def analyse(data: Path, labels: Path, domain: str, split: str, per_expression: bool) -> dict:
    from raysys.backends import build_text_embedder
    from raysys.eval import evaluate_expression
    from raysys.io import crtrack
    from raysys.io.dataset import DatasetLayout
    from raysys.io.gt import load_objects, load_scene_tracks
    from raysys.io.tables import read_table, table_to_expressions
    from raysys.labeling.describe_stage import descriptions_path
    from raysys.labeling.quality import pred_rows
    from raysys.labeling.scene_stage import STAGES, read_stage, stage_path

    layout = DatasetLayout(data, domain, split)
    scenes = sorted(p.name for p in (labels / "scenes").iterdir() if p.is_dir())
    gt = {s: load_scene_tracks(layout, s, "person") for s in scenes}
    attrs = {s: {o["id"]: o["attributes"] for o in load_objects(layout, s)} for s in scenes}
    gt_exprs = [e for e in crtrack.list_expressions(layout.gt_root) if e.scene in scenes]
    emb = build_text_embedder("minilm")
    gt_emb = emb.embed([e.text for e in gt_exprs])
    gt_rows = {e.name: crtrack.read_expression_gt(layout.gt_root, e.name) for e in gt_exprs}
    gt_ids = {k: {int(i) for r in v.values() for i in r[:, 1]} for k, v in gt_rows.items()}
    report, per_expr = {}, {}
    for st in STAGES:
        rows = {s: read_stage(stage_path(labels, s, st)) for s in scenes}
        owner, texts = {}, {}
        for s in scenes:
            by = {}
            for g, t in rows[s]:
                by.setdefault(g, []).append((t.view, t))
            for g, r in by.items():
                owner[(s, g)] = _gt_owner(r, gt[s])
            d = read_table(descriptions_path(labels, s, st)).to_pydict()
            texts.update({(s, int(g)): t for g, t in zip(d["global_id"], d["text"],
                                                           strict=True)})
        pseudo = table_to_expressions(
            read_table(labels / "stages" / st / "expressions.parquet"))
        p_emb = emb.embed([p.text for p in pseudo])
        real, oracle, prec, rec = [], [], [], []
        for k, e in enumerate(gt_exprs):
            want = gt_ids[e.name]
            ids = {g for (s, g), (o, _) in owner.items() if s == e.scene and o in want}
            oracle.append(evaluate_expression(
                gt_rows[e.name], pred_rows(rows[e.scene], list(gt_rows[e.name]), ids))
                .cvr_idf1)
            cand = [i for i, p in enumerate(pseudo) if p.scene == e.scene]
            best = pseudo[cand[int(np.argmax(p_emb[cand] @ gt_emb[k]))]]
            chosen = set(best.global_ids)
            r = evaluate_expression(gt_rows[e.name],
                                    pred_rows(rows[e.scene], list(gt_rows[e.name]), chosen))
            real.append(r.cvr_idf1)
            hit = {owner[(e.scene, g)][0] for g in chosen} & want
            prec.append(sum(owner[(e.scene, g)][0] in want for g in chosen) / max(len(chosen), 1))
            rec.append(len(hit) / max(len(want), 1))
            per_expr.setdefault(e.name, {})[st] = {
                "idf1": round(r.cvr_idf1, 1), "chosen": best.text, "n": len(chosen),
                "right": sum(owner[(e.scene, g)][0] in want for g in chosen),
                "people": len(want)}
        top, bottom = [], []
        for (s, g), (o, _) in owner.items():
            if o is None or (s, g) not in texts:
                continue
            a = attrs[s][o]
            for lst, key, word in ((top, "top", "coat"), (bottom, "bottom", "trousers")):
                ok = _names_colour(texts[(s, g)], a.get(key), word)
                if ok is not None:
                    lst.append(ok)
        report[st] = {
            "referring": round(float(np.mean(real)), 2),
            "oracle": round(float(np.mean(oracle)), 2),
            "trajectories": len(owner),
            "unmatched": sum(o is None for o, _ in owner.values()),
            "mixed": sum(o is not None and p < 0.8 for o, p in owner.values()),
            "top_ok": round(float(np.mean(top)), 3), "bottom_ok": round(float(np.mean(bottom)), 3),
            "chosen_prec": round(float(np.mean(prec)), 3),
            "chosen_rec": round(float(np.mean(rec)), 3),
            "pseudo_expressions": len(pseudo)}
    if per_expression:
        report["per_expression"] = per_expr
    return report


def reprompt_gone(data: Path, labels: Path, domain: str, split: str) -> dict:
    """The association identities that re-prompting merged away or dropped, judged by GT.

    Re-prompting renumbers its identities, so they are matched by boxes, not by number:
    an association identity lives on in the re-prompt identity that holds most of its
    boxes (IoU >= 0.5 at the same view and frame), if one holds at least half of them, and
    is dropped otherwise. A re-prompt identity that several association identities live
    on in merged them: the one with the most boxes is the base, each other one is
    "merged, right" when its GT person is the base's, else "merged, wrong"."""
    from raysys.eval.pairs import iou_xywh
    from raysys.io.dataset import DatasetLayout
    from raysys.io.gt import load_scene_tracks
    from raysys.labeling.scene_stage import read_stage, stage_path

    layout = DatasetLayout(data, domain, split)
    rows, counts = [], Counter()
    for s in sorted(p.name for p in (labels / "scenes").iterdir() if p.is_dir()):
        gt = load_scene_tracks(layout, s, "person")
        before, after = {}, {}
        for st, by in (("association", before), ("reprompt", after)):
            for g, t in read_stage(stage_path(labels, s, st)):
                if t.category == "person":
                    by.setdefault(g, []).append(t)
        after_boxes: dict[tuple[str, int], list] = {}
        for h, ts in after.items():
            for t in ts:
                for f, b in zip(t.frames.tolist(), t.boxes, strict=True):
                    after_boxes.setdefault((t.view, f), []).append((h, np.asarray(b, float)))
        home, info = {}, {}
        for g, ts in before.items():
            into, n = Counter(), 0
            for t in ts:
                for f, b in zip(t.frames.tolist(), t.boxes, strict=True):
                    n += 1
                    for h, hb in after_boxes.get((t.view, f), ()):
                        if iou_xywh(np.asarray(b, float)[None], hb[None])[0] >= 0.5:
                            into[h] += 1
                            break
            who, purity = _gt_owner([(t.view, t) for t in ts], gt)
            info[g] = {"scene": s, "identity": g, "gt": who, "purity": round(purity, 2),
                       "views": sorted({t.view for t in ts}), "boxes": n}
            if into and into.most_common(1)[0][1] >= 0.5 * n:
                home[g] = into.most_common(1)[0][0]
            else:
                row = {**info[g], "fate": "dropped, a person"
                       if who is not None and purity >= 0.5 else "dropped"}
                counts[row["fate"]] += 1
                rows.append(row)
        groups: dict[int, list[int]] = {}
        for g, h in home.items():
            groups.setdefault(h, []).append(g)
        for gs in groups.values():
            base = max(gs, key=lambda g: info[g]["boxes"])
            for g in gs:
                if g == base:
                    continue
                right = info[g]["gt"] is not None and info[g]["gt"] == info[base]["gt"]
                row = {**info[g], "fate": "merged, right" if right else "merged, wrong",
                       "into": base, "into_gt": info[base]["gt"]}
                counts[row["fate"]] += 1
                rows.append(row)
    return {"counts": dict(counts), "identities": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--domain", default="In-domain")
    ap.add_argument("--split", default="train")
    ap.add_argument("--per-expression", action="store_true")
    ap.add_argument("--merges", action="store_true",
                    help="also judge the identities that re-prompting merged or dropped")
    a = ap.parse_args()
    report = analyse(a.data, a.labels, a.domain, a.split, a.per_expression)
    if a.merges:
        report["reprompt_gone"] = reprompt_gone(a.data, a.labels, a.domain, a.split)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
