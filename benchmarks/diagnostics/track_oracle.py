"""Where the ViewSAM tracker loses CVR-IDF1: the same tracker with oracle proposals.

Runs :func:`raysys.tracking.run.track_unit` over the expressions of a dataset split four
ways and scores each with the CRTrack protocol (CVR-IDF1 / CVR-MA, All):

* ``model``: the checkpoint as it is (the Candidate Generator's proposals and referring);
* ``gt_boxes``: every visible GT object's box as the proposals (objectness 1), referring
  probabilities from the model's matching branch on those boxes: the model with a perfect
  detector;
* ``gt_referred``: the same boxes, referring probability 1 for the objects the expression
  refers to and 0 for the others: a perfect detector and perfect referring, so what is left
  is SAM2's mask propagation, the single-view tracks and the CGCT global ids;
* ``gt_all``: every visible GT object's box with referring probability 1 (every object is
  output for every expression): with one object per view the global ids are easy, with all
  of them they are not, so this isolates the CGCT cross-view identities (the score with
  true ids, ``all_objects_ceiling``, is computed from GT and printed too).

With ``--breakdown`` each mode also counts where every referred GT box went
(:func:`raysys.report.oracle.referred_bucket`): ``output``, ``no_proposal`` (no proposal
overlaps it at IoU 0.5), ``refer_below`` / ``objectness_below`` (the overlapping proposals
fall below the tracker's referring / objectness threshold), ``not_output`` (one passes both:
a live track held it, ``max_tracks``, or its track's mean referring is below ``min_refer``).

GT is read here for evaluation only (the oracle proposals are its boxes); training never
sees it. The work is :mod:`raysys.report.oracle` (the report's identity diagnostic runs its
``gt_all`` mode on people); this is its command line. Prints one JSON object:

    python benchmarks/diagnostics/track_oracle.py --model RUN/final --data DATA \\
        [--domain In-domain --split test --units 12 --modes model,gt_boxes,gt_referred,gt_all]
        [--refer-threshold 0 --set max_tracks=16]   # TrackConfig overrides
        [--breakdown]                               # where the referred GT boxes went
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from raysys.report.oracle import MODES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="ViewSAM checkpoint (RUN/final)")
    ap.add_argument("--data", type=Path, required=True, help="generated dataset root")
    ap.add_argument("--domain", default="In-domain")
    ap.add_argument("--split", default="test")
    ap.add_argument("--units", type=int, default=12,
                    help="expressions tracked, spread evenly over the split (0: all)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--refer-threshold", type=float, default=None,
                    help="TrackConfig.refer_threshold (default: the checkpoint's calibration)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a TrackConfig field, e.g. --set max_tracks=16 (repeatable)")
    ap.add_argument("--breakdown", action="store_true",
                    help="also count where every referred GT box went (output, or why not)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"unknown mode(s) {bad}; choose from {list(MODES)}")

    import torch

    from raysys.io.dataset import DatasetLayout
    from raysys.report.oracle import (
        gt_index,
        spread_units,
        track_oracle_modes,
        true_id_reference,
    )
    from raysys.tracking.config import TrackConfig
    from raysys.tracking.run import plan_track_units
    from raysys.viewsam.checkpoint import load_viewsam_checkpoint

    torch.set_num_threads(args.threads)
    layout = DatasetLayout(args.data, args.domain, args.split)
    units = spread_units(plan_track_units(layout), args.units)
    model = load_viewsam_checkpoint(args.model).model
    overrides = {}
    for item in args.set:
        key, _, val = item.partition("=")
        if key not in TrackConfig.__dataclass_fields__ or not val:
            ap.error(f"--set {item!r}: expected FIELD=VALUE with FIELD one of "
                     f"{sorted(TrackConfig.__dataclass_fields__)}")
        overrides[key] = json.loads(val)
    cfg = TrackConfig(refer_threshold=args.refer_threshold, **overrides)
    gts = {u.scene: gt_index(layout, u.scene, u.views) for u in units}
    out: dict = {"benchmark": "track_oracle", "model": str(args.model), "data": str(args.data),
                 "domain": args.domain, "split": args.split, "units": len(units),
                 "refer_threshold": args.refer_threshold,
                 "overrides": overrides,
                 "machine": platform.machine(), "threads": args.threads, "modes": {}}
    if "gt_all" in modes:  # every GT object output under its own id, for every expression
        out["all_objects_ceiling"] = true_id_reference(layout, units, gts)
    for mode in modes:
        out["modes"] |= track_oracle_modes(model, layout, units, [mode], cfg, gts,
                                           progress=True, breakdown=args.breakdown)
        print(json.dumps({mode: out["modes"][mode]}), flush=True)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
