"""Loss curves of a training run: total and per-term loss per epoch, stages marked."""

from __future__ import annotations

import io
import os
from pathlib import Path

from raysys.io import storage

__all__ = ["plot_loss_curves"]


def plot_loss_curves(history: list[dict], path: str | os.PathLike) -> Path:
    """Write a PNG: left the total loss, right each term (log scale), per epoch.

    Args:
        history: metric rows with ``epoch``, ``stage``, ``loss`` and ``loss_<term>`` keys.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = storage.path(path)
    epochs = [r["epoch"] for r in history]
    terms = sorted({k for r in history for k in r if k.startswith("loss_")})
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    a.plot(epochs, [r["loss"] for r in history], "o-", color="k")
    a.set_title("total loss")
    for k in terms:
        b.plot(epochs, [max(r.get(k, float("nan")), 1e-8) for r in history], ".-",
               label=k.removeprefix("loss_"))
    b.set_yscale("log")
    b.set_title("loss terms")
    b.legend(fontsize=7, ncol=2)
    # stage boundaries and names
    for ax in (a, b):
        ax.set_xlabel("epoch")
        start = 0
        for i, r in enumerate(history):
            last = i + 1 == len(history) or history[i + 1]["stage"] != r["stage"]
            if last:
                ax.axvspan(epochs[start] - 0.5, r["epoch"] + 0.5, alpha=0.08,
                           color=f"C{r.get('stage_index', 0) % 10}")
                if ax is a:
                    ax.text((epochs[start] + r["epoch"]) / 2, 0.98, r["stage"], ha="center",
                            va="top", fontsize=7, transform=ax.get_xaxis_transform())
                start = i + 1
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    plt.close(fig)
    storage.write_bytes(path, buf.getvalue())  # a local folder or a storage URI
    return path
