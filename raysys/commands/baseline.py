"""``raysys baseline {concept,sam2}``: the zero-shot baselines of the paper's Table 1.

``concept`` ("SAM3" row): the concept tracker prompted with each expression's category,
ReID clustering across views. ``sam2`` ("SAM2" row): its boxes filtered by the text, then
SAM2 video propagation. Predictions go to ``--out`` in the CRTrack layout; score them with
``raysys eval --gt <data>/<domain>/gt/sorted_gt_<split>_<domain> --pred OUT``.

The baselines are zero-shot: they see frames, category labels and the expression folder
*names* only. The command installs the GT guard (:mod:`raysys.labeling.guard`) before any
work, so a baseline that opened a GT file would fail instead of scoring well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("method", choices=["concept", "sam2"],
                   help="concept: category prompt + ReID clustering (Table 1 'SAM3'); "
                   "sam2: text-filtered boxes + SAM2 propagation (Table 1 'SAM2')")
    p.add_argument("--data", type=Path, required=True, help="dataset root (raysys synth --out)")
    p.add_argument("--domain", default="In-domain", choices=["In-domain", "Cross-domain"])
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--out", type=Path, required=True, metavar="PRED_DIR",
                   help="prediction folder (<Scene>_<expression>/View<k>.txt)")
    p.add_argument("--labels", type=Path, metavar="LABEL_DIR",
                   help="reuse the tracklets of a `raysys label` output of the same data")
    p.add_argument("--tracker", default="classical", help="concept tracker backend")
    p.add_argument("--reid", default="stripes", help="ReID backend")
    p.add_argument("--threshold", type=float, help="average cosine to merge tracklets across "
                   "views (default 0.6)")
    p.add_argument("--device", default="cpu", help="device of the models (cpu | cuda)")
    g = p.add_argument_group("sam2 method")
    g.add_argument("--sam2-config", help="SAM2 YAML (file or sam2 package name) of "
                   "--sam2-checkpoint; default: the embedded tiny config")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--sam2-checkpoint", help="local SAM2 .pt (with --sam2-config)")
    w.add_argument("--viewsam-checkpoint", help="`raysys train` output folder (e.g. "
                   "OUT/final): its SAM2 base is used")
    g.add_argument("--sam2-image-size", type=int,
                   help="input size of a random-init SAM2 (no weights given)")
    g.add_argument("--margin", type=float, default=0.05,
                   help="keep trajectories within this cosine of the best match")
    g.add_argument("--describer", default="colours", help="describer backend")
    g.add_argument("--text", default="minilm", help="text embedder spec")
    p.add_argument("--torch-threads", type=int, metavar="N",
                   help="torch intra-op threads (1 is much faster for small SAM2 models on "
                   "a busy CPU)")
    p.add_argument("--summary", type=Path, help="also write the run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from raysys.io.dataset import DatasetLayout

    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    kw = {"label_dir": args.labels, "tracker": args.tracker, "reid": args.reid,
          "device": args.device, "progress": not args.quiet}
    if args.threshold is not None:
        kw["threshold"] = args.threshold
    from raysys.labeling import guard

    try:
        layout = DatasetLayout(args.data, args.domain, args.split)
        guard.install(layout.ground_truth_dirs())
        if args.method == "concept":
            from raysys.baselines.zero_shot_concept import run_zero_shot_concept

            summary = run_zero_shot_concept(layout, args.out, **kw)
        else:
            from raysys.baselines.zero_shot_sam2 import (
                Sam2Spec,
                TextFilterConfig,
                run_zero_shot_sam2,
            )

            spec = Sam2Spec(config=args.sam2_config, checkpoint=args.sam2_checkpoint,
                            viewsam_checkpoint=args.viewsam_checkpoint,
                            image_size=args.sam2_image_size)
            summary = run_zero_shot_sam2(layout, args.out, sam2=spec, describer=args.describer,
                                         text=args.text,
                                         text_filter=TextFilterConfig(margin=args.margin), **kw)
    except (ValueError, FileNotFoundError) as e:
        print(f"raysys baseline: error: {e}", file=sys.stderr)
        return 2
    if args.summary is not None:
        from raysys.io.crtrack import atomic_write_text

        atomic_write_text(args.summary, json.dumps(summary, indent=1, default=str) + "\n")
    gt = layout.gt_root
    print(f"[raysys baseline {args.method}] {summary['expressions']} expressions -> {args.out} "
          f"in {summary['seconds']:.1f} s ({summary['source']})")
    print(f"score: raysys eval --gt {gt} --pred {args.out}")
    return 0
