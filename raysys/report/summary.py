"""The report's console summary: Table 1, the targets, and where everything is."""

from __future__ import annotations

from pathlib import Path

from raysys.report.tables import METHOD_NAMES, teacher_score

__all__ = ["format_summary"]


def _f(x) -> str:
    return "-" if x is None else f"{float(x):.2f}"


def format_summary(report: dict, out: Path) -> str:
    """The targets and Table 1 as console text, and where the report's files are."""
    lines: list[str] = []
    for key, title in (("table1", "In-domain test"), ("cross_domain", "Cross-domain test")):
        rows = report.get(key) or {}
        if not rows:
            continue
        lines += [f"\n[raysys report] Table 1, {title} (All):",
                  f"  {'method':40s} {'CVR-IDF1':>9s} {'CVR-MA':>9s}"]
        for m, r in rows.items():
            a = r["All"]
            lines.append(f"  {METHOD_NAMES.get(m, m):40s} {_f(a.get('CVR-IDF1')):>9s} "
                         f"{_f(a.get('CVR-MA')):>9s}")
        tch = teacher_score(report.get("pseudo_labels_test")) if key == "table1" else None
        if tch is not None:
            lines.append(f"  {'(reference) Stage 1 offline on test':40s} "
                         f"{_f(tch.get('CVR-IDF1')):>9s} {_f(tch.get('CVR-MA')):>9s}")
    lines.append("\n[raysys report] targets:")
    for t in report.get("targets", []):
        mark = {True: "met", False: "MISSED", None: "not measured"}[t["passed"]]
        lines.append(f"  [{mark}] {t['target']}: {t.get('text', '')}")
    lines.append(f"\n[raysys report] report: {out / 'report.md'}  "
                 f"(numbers: {out / 'report.json'})")
    if (report.get("video") or {}).get("gif"):
        lines.append(f"[raysys report] video:  {report['video']['gif']}")
    t = report.get("timing", {})
    if "total" in t:
        lines.append(f"[raysys report] took {t['total']:.1f} s")
    return "\n".join(lines)
