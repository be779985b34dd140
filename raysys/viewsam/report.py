"""Parameter report of a built ViewSAM: base, text encoder, each module, trainable share.

The paper reports ViewSAM as ~10% extra trainable parameters on a frozen SAM2 (Hiera-B+)
and a frozen RoBERTa-base: VC-CMA ~4.6 M, Candidate Generator ~12.1 M, BAR ~1.1 M and
CGCT ~2.3 M. Here ``vc_cma`` also holds the view token (and, in the VC-CMA ablation, the
plain text-prompt projection that replaces it).
"""

from __future__ import annotations

from torch import nn

__all__ = ["MODULE_KEYS", "PAPER_MODULE_PARAMS", "parameter_report", "trainable_flags",
           "format_parameter_report"]

MODULE_KEYS = ("vc_cma", "candidate_generator", "bar", "cgct")
PAPER_MODULE_PARAMS = {"vc_cma": 4.6e6, "candidate_generator": 12.1e6, "bar": 1.1e6,
                       "cgct": 2.3e6}
_PARTS = {"vc_cma": ("vc_cma", "view_token", "text_prompt"),
          "candidate_generator": ("candidate_generator",), "bar": ("bar",), "cgct": ("cgct",)}


def _count(m: nn.Module | None, trainable_only: bool = False) -> int:
    if m is None:
        return 0
    return sum(p.numel() for p in m.parameters() if p.requires_grad or not trainable_only)


def parameter_report(model: nn.Module) -> dict:
    """``{"base", "text_encoder", "modules": {vc_cma, candidate_generator, bar, cgct},
    "trainable", "total", "trainable_share"}`` (counts are ints, the share a float)."""
    modules = {k: sum(_count(getattr(model, name, None)) for name in _PARTS[k])
               for k in MODULE_KEYS}
    total = _count(model)
    trainable = _count(model, trainable_only=True)
    return {"base": _count(model.sam2), "text_encoder": _count(model.text_encoder),
            "modules": modules, "trainable": trainable, "total": total,
            "trainable_share": trainable / total if total else 0.0}


def trainable_flags(model: nn.Module) -> dict[str, bool]:
    """Per report row (``base``, ``text_encoder``, module keys): does any parameter train?"""
    def trains(names) -> bool:
        return any(p.requires_grad for n in names if getattr(model, n, None) is not None
                   for p in getattr(model, n).parameters())

    flags = {"base": trains(["sam2"]), "text_encoder": trains(["text_encoder"])}
    return flags | {k: trains(_PARTS[k]) for k in MODULE_KEYS}


def format_parameter_report(report: dict, trainable_of: dict[str, bool] | None = None) -> str:
    """A readable table: module, params, share of the total, trainable.

    Args:
        trainable_of: per row name (``base``, ``text_encoder`` and module keys) whether it
            trains; shown as ``yes``/``no`` (``-`` when unknown).
    """
    total = report["total"] or 1
    rows = [("base (SAM2)", "base", report["base"]),
            ("text_encoder", "text_encoder", report["text_encoder"])]
    rows += [(f"  {k}", k, report["modules"][k]) for k in MODULE_KEYS]
    flag = trainable_of or {}
    lines = [f"{'module':<22}{'params':>14}{'share':>9}  trainable"]
    for label, key, n in rows:
        t = "-" if key not in flag else ("yes" if flag[key] else "no")
        lines.append(f"{label:<22}{n:>14,}{100 * n / total:>8.2f}%  {t}")
    mods = sum(report["modules"].values())
    lines.append(f"{'modules (sum)':<22}{mods:>14,}{100 * mods / total:>8.2f}%")
    lines.append(f"{'trainable':<22}{report['trainable']:>14,}"
                 f"{100 * report['trainable_share']:>8.2f}%")
    lines.append(f"{'total':<22}{report['total']:>14,}{100.0:>8.2f}%")
    return "\n".join(lines)
