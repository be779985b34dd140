"""Where referring decisions are lost: the text matcher on GT boxes, per box, per track and
per identity, with one threshold for every expression against each expression's own.

The Candidate Generator refers as the frozen text matcher (the APTM analogue's text side,
`raysys pretrain-matcher`) scores the attribute net's reading of a box, plus a residual the
pseudo labels train. This script measures the matcher alone on the GT person boxes of a
split (every `--every`-th frame, visible >= 0.3, read exactly as the CG reads a proposal):

* `box`: each box scored on its own (ROC AUC over every expression x box of its scene);
* `track`: each GT object in one view, the mean referring probability of its boxes (the
  tracker's rule: a track is output while its mean probability passes the threshold);
* `identity`: each GT object over all its views (a teacher-like decision after a perfect
  cross-view association);
* `*_mean_attributes`: the matcher on the mean attribute reading instead (the describer's
  way of aggregating: read everything, then decide).

For each level: pooled AUC and the mean of each expression's own AUC; F1 of the
decisions at the single threshold best over all expressions (what a calibrated tracker
has) and, per expression, at that threshold and at its own best one (an oracle that no
tracker has). The gap between the last two is what one global threshold costs.

Reads GT: evaluation only. Prints JSON (and writes it with `--json`).

    python benchmarks/diagnostics/referring_decisions.py --data D [--split test] [--every 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _f1(scores: np.ndarray, labels: np.ndarray, t: float) -> float:
    p = scores >= t
    return float(2 * (p & labels).sum() / max(p.sum() + labels.sum(), 1))


def _level(per_expr: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """AUCs and F1s of one level from each expression's ``(scores, labels)``."""
    from raysys.eval.auc import roc_auc
    from raysys.training.calibrate import best_f1_threshold

    s = np.concatenate([x for x, _ in per_expr])
    y = np.concatenate([y for _, y in per_expr]).astype(bool)
    t, f = best_f1_threshold(s, y)
    has = [(x, yy.astype(bool)) for x, yy in per_expr if yy.any()]
    both = [(x, yy) for x, yy in has if not yy.all()]
    return {"samples": int(y.size), "positives": int(y.sum()),
            "auc_pooled": round(float(roc_auc(s, y)), 4),
            "auc_per_expression": round(float(np.mean([roc_auc(x, yy) for x, yy in both])), 4),
            "global_threshold": round(t, 4), "f1_pooled": round(f, 4),
            "f1_per_expression_at_global": round(float(np.mean([_f1(x, yy, t)
                                                                for x, yy in has])), 4),
            "f1_per_expression_at_own_best": round(float(np.mean(
                [best_f1_threshold(x, yy)[1] for x, yy in has])), 4)}


def measure(d, matcher) -> dict:
    """Every level of the module doc for the boxes and expressions of ``d`` (MatcherData
    with views, people only)."""
    import torch

    levels: dict[str, list] = {k: [] for k in (
        "box", "track", "track_mean_attributes", "identity", "identity_mean_attributes")}
    attrs = torch.from_numpy(d.attributes)
    for e in range(len(d.texts)):
        rows = np.flatnonzero((d.scenes == d.expression_scene[e]) & (d.objects >= 0))
        if not rows.size:
            continue
        obj, view, a = d.objects[rows], d.views[rows], attrs[rows]
        sent = torch.from_numpy(d.sentences[[e]])
        with torch.no_grad():
            logit = matcher(a, sent.expand(len(rows), -1)).numpy()
        prob = 1 / (1 + np.exp(-logit))
        ref = d.referred[e]
        levels["box"].append((prob, np.array([o in ref for o in obj])))
        for name, keys in (("track", list(zip(obj, view, strict=True))),
                           ("identity", list(obj))):
            uniq = sorted(set(keys))
            index = {k: i for i, k in enumerate(uniq)}
            g = np.array([index[k] for k in keys])
            n = np.bincount(g, minlength=len(uniq))
            mean_p = np.bincount(g, weights=prob, minlength=len(uniq)) / n
            mean_a = torch.zeros(len(uniq), a.shape[1]).index_add_(
                0, torch.from_numpy(g), a) / torch.from_numpy(n)[:, None].float()
            with torch.no_grad():
                la = matcher(mean_a, sent.expand(len(uniq), -1)).numpy()
            y = np.array([(k[0] if name == "track" else k) in ref for k in uniq])
            levels[name].append((mean_p, y))
            levels[f"{name}_mean_attributes"].append((1 / (1 + np.exp(-la)), y))
    return {k: _level(v) for k, v in levels.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="generated dataset root")
    ap.add_argument("--domain", default="In-domain")
    ap.add_argument("--split", default="test")
    ap.add_argument("--every", type=int, default=2, help="read every N-th frame")
    ap.add_argument("--matcher", default="embedded",
                    help="text matcher file (`raysys pretrain-matcher`), or embedded")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)

    import torch

    from raysys.commands.options import write_json
    from raysys.training.pretrain_matcher import matcher_data
    from raysys.viewsam.text_matcher import load_text_matcher

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    matcher, meta = load_text_matcher(args.matcher)
    d = matcher_data([args.data], every=args.every, background=0, progress=False,
                     domain=args.domain, split=args.split)
    out = {"benchmark": "referring_decisions", "data": str(args.data),
           "domain": args.domain, "split": args.split, "every": args.every,
           "matcher": args.matcher, "expressions": len(d.texts),
           "levels": measure(d, matcher.eval()),
           "seconds": round(time.perf_counter() - t0, 1),
           "machine": platform.machine(), "threads": args.threads}
    print(json.dumps(out, indent=2))
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
