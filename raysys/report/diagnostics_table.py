"""The report's diagnostics section: what report.json keeps of
:func:`raysys.report.diagnostics.run_diagnostics` (ViewSAM) and
:func:`raysys.report.baseline_diagnostics.zero_shot_diagnostics` (the zero-shot rows), and
its Markdown table. Pure functions; nothing here runs a model."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DIAGNOSTIC_MODELS", "slim_diagnostics", "diagnostics_markdown"]

DIAGNOSTIC_MODELS = ("zero_shot_concept", "zero_shot_sam2", "viewsam_weak", "viewsam_full")
VIEWSAM_MODELS = ("viewsam_weak", "viewsam_full")
_KEEP = {
    "proposals": ("recall_iou50", "recall_iou30", "precision_iou50", "gt_boxes", "boxes"),
    "ids": ("own_ids", "true_ids", "gap", "expressions", "note"),
    "referring": ("auc", "expressions", "referred", "others", "referred_kept",
                  "others_kept", "note"),
    "kept_boxes": ("CVR-IDF1", "CVR-MA", "expressions"),
    "base": ("memory_iou", "box_iou", "clips", "objects", "memory_object_frames"),
    "candidates": ("recall_iou50", "recall_iou30", "refer_auc_gt_boxes", "refer_auc",
                   "objects", "refer_objects", "note"),
    "cgct": ("margin", "same_id", "different_id", "pairs", "within_view_margin", "note"),
    "identity": ("gt_all", "true_ids", "gap", "units", "category", "max_tracks"),
}


def slim_diagnostics(diag: Mapping[str, Mapping]) -> dict:
    """model -> ``{"base", "candidates", "cgct", "identity", "config", "seconds"}`` with the
    figures the report shows (the whole output stays in ``diagnostics/<model>.json``)."""
    out = {}
    for m in DIAGNOSTIC_MODELS:
        d = diag.get(m)
        if not d:
            continue
        out[m] = {part: {k: d[part][k] for k in keys if k in (d.get(part) or {})}
                  for part, keys in _KEEP.items() if part in d}
        out[m] |= {k: d[k] for k in ("config", "seconds", "split") if k in d}
    return out


def _num(x, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(float(x))


def _get(d: Mapping, *path):
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return None
        d = d[p]
    return d


def _first(d: Mapping, *paths):
    """The first of ``paths`` that ``d`` has (None if none)."""
    for p in paths:
        x = _get(d, *p)
        if x is not None:
            return x
    return None


def _cvr(d: Mapping | None) -> str:
    if not d:
        return "-"
    return f"{_num(d.get('CVR-IDF1'), '{:.2f}')} / {_num(d.get('CVR-MA'), '{:.2f}')}"


ROWS = (  # (label, function of one model's slimmed diagnostics -> cell)
    ("base: memory-only mask IoU (GT box on frame 1, memory carries the next 7)",
     lambda d: _num(_get(d, "base", "memory_iou"))),
    ("base: box-prompted mask IoU (GT box on every frame)",
     lambda d: _num(_get(d, "base", "box_iou"))),
    ("proposal recall at IoU 0.5 (GT person boxes; Candidate Generator / the zero-shot "
     "rows' concept tracker)",
     lambda d: _num(_first(d, ("candidates", "recall_iou50"), ("proposals", "recall_iou50")),
                    "{:.1%}")),
    ("Candidate Generator: referring AUC on GT boxes (0.5 = chance)",
     lambda d: _num(_get(d, "candidates", "refer_auc_gt_boxes"))),
    ("referring AUC on its own proposals (zero-shot SAM2: its text filter on its "
     "trajectories)",
     lambda d: _num(_first(d, ("candidates", "refer_auc"), ("referring", "auc")))),
    ("CGCT: same-id minus different-id cosine across views (paper Fig. 4(b): 0.248 → 0.422)",
     lambda d: _num(_get(d, "cgct", "margin"))),
    ("CGCT: mean cosine, same id / different ids",
     lambda d: "-" if _get(d, "cgct") is None else
     f"{_num(_get(d, 'cgct', 'same_id'))} / {_num(_get(d, 'cgct', 'different_id'))}"),
    ("cross-view ids, every GT person box given (gt_all): CVR-IDF1 / CVR-MA",
     lambda d: _cvr(_get(d, "identity", "gt_all"))),
    ("(reference) every GT person under the true id: CVR-IDF1 / CVR-MA",
     lambda d: _cvr(_get(d, "identity", "true_ids"))),
    ("cross-view ids, its own person boxes output for every expression: its ids / "
     "each box under its GT person's id (CVR-IDF1)",
     lambda d: "-" if _get(d, "ids", "own_ids") is None else
     f"{_num(_get(d, 'ids', 'own_ids', 'CVR-IDF1'), '{:.2f}')} / "
     f"{_num(_get(d, 'ids', 'true_ids', 'CVR-IDF1'), '{:.2f}')}"),
    ("zero-shot SAM2 without propagation: the trajectories its text filter keeps, with the "
     "person tracker's own boxes: CVR-IDF1 / CVR-MA",
     lambda d: _cvr(_get(d, "kept_boxes"))),
)


def diagnostics_markdown(diag: Mapping[str, Mapping], names: Mapping[str, str]) -> list[str]:
    """The section's Markdown parts (``names``: model key -> column title)."""
    head = ["## Diagnostics (In-domain test)\n"]
    models = [m for m in DIAGNOSTIC_MODELS if m in diag]
    if not models:
        return head + ["_not run_\n"]
    first = next((diag[m] for m in VIEWSAM_MODELS if m in diag), {})
    cfg = first.get("config") or {}
    ident = first.get("identity") or {}
    head.append(
        "Each part of the model on its own, GT read for evaluation only "
        "(`raysys/report/diagnostics.py`): the SAM2 base on "
        f"{_get(first, 'base', 'clips') or '-'} single-view clips of "
        f"{cfg.get('base_frames', '-')} frames; the Candidate Generator and CGCT on "
        f"{cfg.get('clips', '-')} clips of every view (CGCT pooled under the GT masks); "
        f"the tracker with every GT person's box on {ident.get('units', '-')} expressions "
        "(referring 1 for all, so only the cross-view ids separate it from the reference "
        "below it). The zero-shot rows from their own outputs "
        "(`raysys/report/baseline_diagnostics.py`): the concept tracker's person boxes, "
        "which both rows start from; the SAM2 row's text filter; the concept row's ids. "
        "The zero-shot SAM2 row's base is the weak model's.\n")
    lines = ["| figure | " + " | ".join(names.get(m, m) for m in models) + " |",
             "|---" + "|---:" * len(models) + "|"]
    for label, cell in ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(diag[m]) for m in models) + " |")
    return head + ["\n".join(lines) + "\n"]
