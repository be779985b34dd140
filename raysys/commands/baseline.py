"""``raysys baseline {concept,sam2,filtered}``: the zero-shot baselines of Table 1.

``concept`` ("SAM3" row): the concept tracker prompted with each expression's category,
ReID clustering across views. ``sam2`` ("SAM2" row): its boxes filtered by the text, then
SAM2 video propagation. ``filtered`` (not a row of the paper): the same text filter with
the concept tracker's own boxes, no SAM2 (a zero-shot referring reference; on the main job
it scores far above both rows, docs/report.md#diagnostics). Predictions go to ``--out``
in the CRTrack layout; score them with ``raysys eval --gt
<data>/<domain>/gt/sorted_gt_<split>_<domain> --pred OUT``.

The baselines are zero-shot: they see frames, category labels and the expression folder
*names* only. The command installs the GT guard (:mod:`raysys.guard`) before any
work, so a baseline that opened a GT file would fail instead of scoring well.

Examples::

    raysys baseline concept --data DATA --out PRED_CONCEPT --labels LABELS
    raysys baseline sam2 --data DATA --out PRED_SAM2 --model RUN/final --torch-threads 1
    raysys baseline filtered --data DATA --out PRED_FILTERED
    raysys baseline sam2 --data DATA --out PRED_SAM2 --sam2-checkpoint sam2.1_b+.pt \\
        --sam2-config configs/sam2.1/sam2.1_hiera_b+.yaml --json summary.json
"""

from __future__ import annotations

import argparse

from raysys.commands.options import (
    add_allow_partial,
    add_data,
    add_domain,
    add_json,
    add_labels,
    add_model,
    add_out,
    add_split,
    require_dataset,
    write_json,
)
from raysys.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("method", choices=["concept", "sam2", "filtered"],
                   help="concept: category prompt + ReID clustering (Table 1 'SAM3'); "
                   "sam2: text-filtered boxes + SAM2 propagation (Table 1 'SAM2'); "
                   "filtered: the same text filter on the tracker's own boxes, no SAM2")
    add_data(p)
    add_domain(p)
    add_split(p, "test")
    add_out(p, "prediction folder (<Scene>_<expression>/View<k>.txt)", metavar="PRED")
    add_labels(p, help="reuse the tracklets of a `raysys label` output of the same data")
    p.add_argument("--tracker", help="concept tracker backend (default classical)")
    p.add_argument("--reid", help="ReID backend (default stripes)")
    p.add_argument("--threshold", type=float, help="average cosine to merge tracklets across "
                   "views (default 0.6)")
    p.add_argument("--device", help="device of the models: cpu (default) | cuda")
    g = p.add_argument_group("sam2 method (the describer, text and margin flags also apply "
                             "to filtered)")
    g.add_argument("--sam2-config", help="SAM2 YAML (file or sam2 package name) of "
                   "--sam2-checkpoint; default: the embedded tiny config")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--sam2-checkpoint", help="local SAM2 .pt (with --sam2-config)")
    add_model(w, help="ViewSAM checkpoint folder (a `raysys train` run's final/): its SAM2 "
                      "base is used")
    add_allow_partial(g)
    g.add_argument("--sam2-image-size", type=int,
                   help="input size of a random-init SAM2 (no weights given)")
    g.add_argument("--margin", type=float,
                   help="keep trajectories within this cosine of the best match (default 0.05)")
    g.add_argument("--describer", help="describer backend (default attributes, as Stage 1; "
                   "colours needs no weights)")
    g.add_argument("--text", help="text embedder spec (default minilm)")
    p.add_argument("--torch-threads", type=int, metavar="N",
                   help="torch intra-op threads (1 is much faster for small SAM2 models on "
                   "a busy CPU)")
    add_json(p, "also write the run summary as JSON to PATH ('-': stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _check_sam2_inputs(args: argparse.Namespace) -> None:
    """The cheap checks of the SAM2 weights and YAML, before any work: what ``--model`` is
    (an old-format checkpoint, a SAM2 .pt) and every ``_target_`` of ``--sam2-config``."""
    if args.model is not None:
        from raysys.viewsam.checkpoint import checkpoint_dir

        checkpoint_dir(args.model)
    if args.sam2_config is not None:
        from raysys.viewsam.base import resolve_sam2_config
        from raysys.viewsam.sam2_yaml import read_sam2_yaml

        read_sam2_yaml(resolve_sam2_config(args.sam2_config))


def _options(args: argparse.Namespace) -> dict:
    """The baseline function's keyword arguments the flags set (the rest keep its
    defaults)."""
    kw = {"label_dir": args.labels, "tracker": args.tracker, "reid": args.reid,
          "threshold": args.threshold, "device": args.device, "progress": not args.quiet}
    if args.allow_partial and (args.method != "sam2" or args.model is None):
        raise UserError("--allow-partial applies to `baseline sam2 --model` only")
    sam2_flags = [f for f, v in (("--model", args.model), ("--sam2-checkpoint",
                  args.sam2_checkpoint), ("--sam2-config", args.sam2_config),
                  ("--sam2-image-size", args.sam2_image_size)) if v is not None]
    if sam2_flags and args.method != "sam2":
        raise UserError(f"{', '.join(sam2_flags)} applies to `baseline sam2` only: "
                        f"`baseline {args.method}` uses no SAM2")
    if args.method == "sam2":
        from raysys.baselines.zero_shot_sam2 import Sam2Spec

        _check_sam2_inputs(args)
        kw["sam2"] = Sam2Spec(config=args.sam2_config, checkpoint=args.sam2_checkpoint,
                              viewsam_checkpoint=str(args.model) if args.model else None,
                              image_size=args.sam2_image_size,
                              allow_partial=args.allow_partial)
    if args.method in ("sam2", "filtered"):
        from raysys.baselines.zero_shot_sam2 import TextFilterConfig

        kw.update(describer=args.describer, text=args.text)
        if args.margin is not None:
            kw["text_filter"] = TextFilterConfig(margin=args.margin)
    return {k: v for k, v in kw.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    from raysys.baselines.job import baseline_job
    from raysys.io.dataset import DatasetLayout

    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    require_dataset(args.data)
    layout = DatasetLayout(args.data, args.domain, args.split)
    summary = baseline_job(args.method, layout, args.out, **_options(args))
    if args.json is not None:
        write_json(args.json, summary)
    print(f"[raysys baseline {args.method}] {summary['expressions']} expressions -> {args.out} "
          f"in {summary['seconds']:.1f} s ({summary['source']})")
    print(f"score: raysys eval --gt {layout.gt_root} --pred {args.out}")
    return 0
