"""A sweep's outputs: ``results.parquet``, ``best_config.json``, plots, ``summary.md``.

* ``results.parquet``: one row per trial: ``trial_id``, its parameters (one column each),
  ``epochs`` and ``metric`` (the validation CVR-IDF1 per reported epoch, lists, global epoch
  index across the schedule), ``best``, ``best_epoch``, ``status`` (completed |
  stopped (ASHA, or an interrupted sweep) | error | not_started) and ``oracle``;
* ``best_config.json``: the whole :class:`raysys.training.config.TrainConfig` of the best
  trial, with the full schedule (no shared prefix): ``raysys train --config`` takes it as is;
* ``metric_vs_params.png`` (best metric against each parameter), ``trial_curves.png``;
* ``summary.md``: the table, the held-out frames, the best parameters.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from raysys.config import to_dict
from raysys.io.jsonio import write_json_file
from raysys.tune.space import apply_params
from raysys.tune.validation import METRIC

__all__ = ["trial_rows", "write_outputs"]


def _status(result, epochs: list[int], total: int) -> str:
    if result.error is not None:
        return "error"
    if not epochs:
        return "not_started"
    return "completed" if epochs[-1] >= total else "stopped"


def trial_rows(grid, names: list[str], total: int) -> list[dict]:
    """One dict per trial of a Tune ``ResultGrid``."""
    rows = []
    for r in grid:
        df = r.metrics_dataframe
        if df is not None and METRIC in df and "global_epoch" in df:
            df = df.dropna(subset=[METRIC]).sort_values("global_epoch")
            epochs = [int(e) for e in df["global_epoch"]]
            metric = [float(m) for m in df[METRIC]]
        else:
            epochs, metric = [], []
        best = max(metric) if metric else math.nan
        rid = (r.metrics or {}).get("trial_id") or Path(r.path).name
        rows.append({"trial_id": str(rid),
                     **{n: float(r.config[n]) for n in names if n in (r.config or {})},
                     "epochs": epochs, "metric": metric, "best": best,
                     "best_epoch": epochs[metric.index(best)] if metric else None,
                     "status": _status(r, epochs, total),
                     "error": str(r.error).splitlines()[0][:300] if r.error else None})
    return rows


def _plots(rows: list[dict], names: list[str], out: Path, title: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["metric"]]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for ax, n in zip(axes[0], names, strict=True):
        ax.scatter([r[n] for r in done], [r["best"] for r in done], c="C0")
        ax.set_xlabel(n)
        ax.set_ylabel(f"best {METRIC}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "metric_vs_params.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in done:
        ax.plot(r["epochs"], r["metric"], "o-", label=f"{r['trial_id']} ({r['status']})")
    ax.set_xlabel("global epoch (across stages)")
    ax.set_ylabel(METRIC)
    ax.set_title(title)
    if done:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "trial_curves.png", dpi=100)
    plt.close(fig)
    return ["metric_vs_params.png", "trial_curves.png"]


def _summary_md(rows, names, best, info: dict) -> str:
    kind = "ORACLE: validated on the dataset's GT" if info["oracle"] else \
        "weak-safe: validated on held-out pseudo labels, no GT"
    lines = [f"# Sweep summary ({kind})", "",
             f"- metric: `{METRIC}` (CVR-IDF1, %, project evaluator) on held-out frames "
             f"{json.dumps(info['holdout'])}",
             f"- trials: {len(rows)} ({', '.join(f'{k} {v}' for k, v in info['status'].items())})"
             f"; search {info['search']}; ASHA on global epoch, grace {info['grace']}"
             f", max {info['total_epochs']}",
             f"- shared prefix: {info['prefix_epochs']} epochs trained once for all trials", ""]
    head = ["trial", *names, "best", "at epoch", "status", "per epoch"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: -r["best"] if r["metric"] else math.inf):
        cells = [r["trial_id"], *(f"{r.get(n, math.nan):.4g}" for n in names),
                 f"{r['best']:.2f}" if r["metric"] else "-", str(r["best_epoch"] or "-"),
                 r["status"], ", ".join(f"{m:.1f}" for m in r["metric"])]
        lines.append("| " + " | ".join(cells) + " |")
    if best is not None and len({r["best"] for r in rows if r["metric"]}) == 1:
        lines += ["", f"All scored trials tie at {best['best']:.2f}: the ranking says nothing; "
                  "`best_config.json` holds the first of them."]
    elif best is not None:
        lines += ["", f"Best: trial {best['trial_id']}, {METRIC} {best['best']:.2f} with "
                  + ", ".join(f"{n} = {best[n]:.4g}" for n in names)
                  + ": `best_config.json` (`raysys train --config best_config.json`)."]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, grid, cfg, space: dict, sweep, *, holdout, oracle: bool,
                  offset: int) -> dict:
    """Write the outputs of a finished (or interrupted) sweep; returns the summary dict."""
    import pandas as pd

    from raysys.tune.sweep import grace_epoch

    names = list(space)
    rows = trial_rows(grid, names, cfg.total_epochs)
    for r in rows:
        r["oracle"] = oracle
    pd.DataFrame(rows).to_parquet(out / "results.parquet", index=False)
    scored = [r for r in rows if r["metric"]]
    best = max(scored, key=lambda r: r["best"]) if scored else None
    if best is not None:
        params = {n: best[n] for n in names}
        write_json_file(out / "best_config.json", to_dict(apply_params(cfg, params)), indent=2)
    status: dict[str, int] = {}
    for r in rows:
        status[r["status"]] = status.get(r["status"], 0) + 1
    info = {"oracle": oracle, "holdout": holdout.to_json(), "status": status,
            "search": sweep.search, "grace": grace_epoch(cfg, names),
            "total_epochs": cfg.total_epochs, "prefix_epochs": offset,
            "best": best, "trials": len(rows)}
    title = f"{METRIC}{' (ORACLE)' if oracle else ''}"
    info["plots"] = _plots(rows, names, out, title)
    (out / "summary.md").write_text(_summary_md(rows, names, best, info))
    write_json_file(out / "summary.json", info, indent=2)
    return info
