"""One zero-shot baseline on one split, in a process of its own under the GT guard.

    python -m raysys.report.baseline_job --method zero_shot_concept --data D \\
        --domain In-domain --split test --out PRED [--checkpoint RUN/final] [--address A]

The zero-shot baselines see frames, category labels and the expression folder *names*
only; the guard (:mod:`raysys.labeling.guard`) is installed in this process and, through
the runtime_env, in every Ray worker it uses, so a baseline that reads GT fails loudly
instead of scoring well. ``raysys report`` runs it; ``PRED/baseline.json`` records the
baseline's summary and marks the run as complete.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from pathlib import Path

__all__ = ["METHODS", "run_baseline", "main"]

# report key -> (module, function)
METHODS: dict[str, tuple[str, str]] = {
    "zero_shot_concept": ("raysys.baselines.zero_shot_concept", "run_zero_shot_concept"),
    "zero_shot_sam2": ("raysys.baselines.zero_shot_sam2", "run_zero_shot_sam2"),
}
# other names a baseline may give its SAM2 weights argument (a path)
_WEIGHT_ARGS = ("checkpoint", "sam2_checkpoint", "viewsam_checkpoint", "weights", "model")


def _function(method: str):
    if method not in METHODS:
        raise ValueError(f"unknown baseline {method!r}; valid: {sorted(METHODS)}")
    mod, fn = METHODS[method]
    try:
        module = importlib.import_module(mod)
        return getattr(module, fn), module
    except (ImportError, AttributeError) as e:
        raise ValueError(f"baseline {method!r} is not available ({mod}.{fn}: {e})") from None


def _weights(module, params, checkpoint: Path) -> dict:
    """The keyword argument that hands ``checkpoint`` to the baseline: a ``Sam2Spec`` for
    ``sam2=`` (a ViewSAM folder, or a SAM2 .pt of the embedded tiny config), else the path
    under whichever weights parameter the function has."""
    spec = getattr(module, "Sam2Spec", None)
    if "sam2" in params and spec is not None:
        if Path(checkpoint).is_dir():
            return {"sam2": spec(viewsam_checkpoint=str(checkpoint))}
        return {"sam2": spec(config="tiny", checkpoint=str(checkpoint))}
    name = next((n for n in _WEIGHT_ARGS if n in params), None)
    if name is None:
        raise ValueError(f"{module.__name__}: no parameter takes the SAM2 weights (tried sam2 "
                         f"with Sam2Spec, {_WEIGHT_ARGS}; it has {list(params)})")
    return {name: str(checkpoint)}


def run_baseline(method: str, layout, pred_root: Path, checkpoint: Path | None = None) -> dict:
    """Call the baseline's library function with the arguments it accepts.

    Raises:
        ValueError: unknown method, or a weights argument the function does not take.
    """
    fn, module = _function(method)
    params = inspect.signature(fn).parameters
    kw: dict = {}
    if "progress" in params:
        kw["progress"] = True
    if checkpoint is not None:
        kw.update(_weights(module, params, checkpoint))
    res = fn(layout, pred_root, **kw)
    return res if isinstance(res, dict) else {"result": str(res)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m raysys.report.baseline_job")
    p.add_argument("--method", required=True, choices=sorted(METHODS))
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--domain", default="In-domain", choices=["In-domain", "Cross-domain"])
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, help="SAM2 weights: ViewSAM folder or SAM2 .pt")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    args = p.parse_args(argv)

    from raysys.io import crtrack
    from raysys.io.dataset import DatasetLayout
    from raysys.labeling import guard
    from raysys.runtime import init_ray

    try:
        layout = DatasetLayout(args.data, args.domain, args.split)
        forbidden = layout.ground_truth_dirs()
        guard.install(forbidden)
        init_ray(args.address, runtime_env=guard.runtime_env(forbidden))
        summary = run_baseline(args.method, layout, args.out, args.checkpoint)
    except (ValueError, FileNotFoundError, PermissionError) as e:
        print(f"baseline {args.method}: error: {e}", file=sys.stderr)
        return 2
    crtrack.atomic_write_text(args.out / "baseline.json",
                              json.dumps(summary, indent=2, default=str))
    print(f"[baseline {args.method}] {args.domain}/{args.split} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
