"""PNG bar charts of the report (matplotlib, Agg backend, imported when a chart is drawn)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from raysys.report.tables import ABLATION_NAMES, COMPLETE_ROW, METHOD_NAMES, STAGE_NAMES

__all__ = ["bar_chart", "write_charts"]


def bar_chart(groups: Mapping[str, Mapping[str, float | None]], path: Path, title: str,
              ylabel: str = "score") -> Path:
    """Grouped bars: one group per key of ``groups``, one bar per metric inside it.

    Args:
        groups: label -> {metric: value (None is drawn as 0 and marked "n/a")}.
        path: PNG to write (parent created).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(groups)
    metrics = list(dict.fromkeys(k for g in groups.values() for k in g))
    if not labels or not metrics:
        raise ValueError(f"nothing to draw for {title!r}")
    x = np.arange(len(labels))
    w = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(labels) + 2), 4.2), dpi=110)
    for i, m in enumerate(metrics):
        vals = [groups[g].get(m) for g in labels]
        ys = [0.0 if v is None else float(v) for v in vals]
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * w, ys, w, label=m)
        for b, v in zip(bars, vals, strict=True):
            ax.annotate("n/a" if v is None else f"{v:.1f}", (b.get_x() + b.get_width() / 2,
                        b.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [_wrap(lb) for lb in labels], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    top = max([float(v) for g in groups.values() for v in g.values() if v is not None] + [1.0])
    ax.set_ylim(min(0.0, *[float(v) for g in groups.values() for v in g.values()
                           if v is not None]), top * 1.15)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _wrap(label: str, width: int = 16) -> str:
    words, lines, cur = label.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return "\n".join([*lines, cur])


def _scores(rows: Mapping[str, Mapping], names: Mapping[str, str]) -> dict:
    return {names.get(m, m): {"CVR-IDF1": r["All"].get("CVR-IDF1"),
                              "CVR-MA": r["All"].get("CVR-MA")} for m, r in rows.items()}


def write_charts(report: Mapping, out_dir: Path) -> dict[str, str]:
    """Every chart the report has numbers for; returns name -> path relative to the
    report folder (``out_dir``'s parent)."""
    out_dir = Path(out_dir)
    made: dict[str, str] = {}

    def rel(p: Path) -> str:
        return f"{out_dir.name}/{p.name}"

    if report.get("table1"):
        made["table1_in"] = rel(bar_chart(_scores(report["table1"], METHOD_NAMES),
                                          out_dir / "table1_in_domain.png",
                                          "Table 1: In-domain test (All)"))
    if report.get("cross_domain"):
        made["table1_cross"] = rel(bar_chart(_scores(report["cross_domain"], METHOD_NAMES),
                                             out_dir / "table1_cross_domain.png",
                                             "Table 1: Cross-domain test (All)"))
    for sup, abl in (report.get("ablations") or {}).items():  # one chart per supervision
        rows = {}
        if COMPLETE_ROW[sup] in report.get("table1", {}):
            rows[f"complete ({sup})"] = report["table1"][COMPLETE_ROW[sup]]
        rows.update({ABLATION_NAMES[a]: v for a, v in abl.items()})
        made[f"ablations_{sup}"] = rel(bar_chart(
            _scores(rows, {}), out_dir / f"ablations_{sup}.png",
            f"Tables 2-3: ablations, {sup} model (In-domain test, All)"))
    q = report.get("pseudo_labels") or {}
    if q.get("identity"):
        groups = {label: {"identity IDF1": q["identity"].get(st, {}).get("CVR-IDF1"),
                          "identity MA": q["identity"].get(st, {}).get("CVR-MA"),
                          "referring IDF1": q.get("referring", {}).get(st, {}).get("CVR-IDF1"),
                          "referring MA": q.get("referring", {}).get(st, {}).get("CVR-MA")}
                  for st, label in STAGE_NAMES.items()}
        made["pseudo_labels"] = rel(bar_chart(groups, out_dir / "pseudo_labels.png",
                                              "Table 4: pseudo-label quality per stage"))
    return made
