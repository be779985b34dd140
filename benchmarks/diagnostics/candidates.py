"""How well a trained ViewSAM's Candidate Generator finds people: proposal recall and referring.

For clips of a dataset split (GT, read for evaluation only), runs the model's clip encoding
(view token, VC-CMA, Candidate Generator; no tracking) and scores its top-K proposals
against every visible GT object of each (view, frame):

* ``recall_iou50`` / ``recall_iou30``: share of visible objects that some proposal covers at
  IoU >= 0.5 / 0.3 (IoU does not change under the resize to the model's square input);
* ``recall_iou50_confident``: the same, counting only proposals above the checkpoint's
  calibrated objectness threshold (what the tracker can open a track from);
* ``refer_auc``: ROC AUC of the referring probability of the proposal that best covers each
  object (IoU >= 0.3), referred objects against the others (0.5 = chance);
* ``refer_median``: median referring probability of referred / other objects;
* ``refer_auc_gt_boxes``: the same AUC for the matching branch scoring every visible GT box
  itself (referring alone, as if detection were perfect);
* ``grid_oracle_recall_iou50``: the same recall for the CG's decoding of its exact targets
  (what the proposal grid allows at this input size, whatever is learned).

The scores are :func:`raysys.report.diagnostics.candidate_scores`, which the report's
diagnostics section also runs. Prints one JSON object:

    python benchmarks/diagnostics/candidates.py --model RUN/final --data DATA \\
        [--domain In-domain --split test --clips 24]

``--fit-steps N --labels LABELS`` instead trains the Candidate Generator of a fresh quick
ViewSAM alone (its stage of the quick schedule, one process, no Ray) for N clips of the
pseudo labels and measures it on the labels' own split and on ``--split``, at N/2 and N:
whether it learns to find people at all, and whether that carries to unseen scenes.
``--fit-data OTHER`` trains on the GT of another generated dataset's train split instead
(pre-training on annotated scenes, the analogue of the paper's referring-VOS pre-training):
whether more annotated scenes and steps make it carry.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def grid_oracle_recall(clips, size: int, stride: int, k: int) -> float:
    """Recall at IoU 0.5 of the CG's decoding fed its exact training targets (heat-map,
    centerness, box size and offset at each object's centre cell): what the proposal grid
    allows at this input size, whatever is learned."""
    import torch

    from raysys.viewsam.candidate_generator import (
        CandidateGenerator,
        CandidateGeneratorConfig,
        dense_targets,
        pairwise_iou,
    )

    cg = CandidateGenerator(1, 1, CandidateGeneratorConfig(num_proposals=k), 1, 1)
    hit = total = 0
    h = w = size // stride
    for c in clips:
        boxes = torch.as_tensor(c["dense_boxes"]).flatten(0, 1)  # (V*T, A, 4) model px
        vis = torch.as_tensor(c["dense_visible"]).flatten(0, 1)
        tg = dense_targets(boxes, vis, h, w, stride)
        n, a = vis.shape
        size_map, off_map = torch.zeros(n, 2, h * w), torch.zeros(n, 2, h * w)
        for i, j in vis.nonzero().tolist():  # one box per cell: the last one wins
            size_map[i, :, tg["cell"][i, j]] = tg["size"][i, j]
            off_map[i, :, tg["cell"][i, j]] = tg["offset"][i, j]
        logit = torch.logit  # targets in [0, 1] -> logits the decoder takes
        pred, _ = cg.decode(logit(tg["heat"].clamp(1e-4, 1 - 1e-4)),
                             logit(tg["ctr"].clamp(1e-4, 1 - 1e-4)),
                             size_map.reshape(n, 2, h, w), off_map.reshape(n, 2, h, w), stride)
        best = pairwise_iou(boxes, pred).amax(-1)
        hit += int((best[vis] >= 0.5).sum())
        total += int(vis.sum())
    return round(hit / max(total, 1), 4)


def fit(args, cfg, clips_eval: dict) -> tuple[list[dict], int]:
    """Train a fresh quick ViewSAM's CG (config ``cfg``) alone on ``args.labels``; measure
    at N/2 and N. Returns the rows and the number of training samples."""
    import torch

    from raysys.report.diagnostics import candidate_scores
    from raysys.training.data import ClipSpec, collate, load_clip, plan_samples
    from raysys.training.model import build_model, set_trainable
    from raysys.training.sources import open_source
    from raysys.viewsam.base import sam2_yaml_text

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, sam2_yaml_text(cfg.sam2_config, cfg.sam2_image_size))
    stage = cfg.stages[0]
    params = set_trainable(model, stage.modules)
    opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=cfg.weight_decay)
    if args.fit_data is not None:  # pre-training: GT of another generated dataset
        src = open_source("full", data=args.fit_data, domain=args.domain, split="train")
    else:
        src = open_source("weak", labels=args.labels)
    spec = ClipSpec.from_config(cfg, cfg.image_size)
    samples = plan_samples(src, spec, None, seed=cfg.seed)
    cache: dict[int, dict] = {}
    rows, t0, step = [], time.perf_counter(), 0
    while step < args.fit_steps:
        for i, sample in enumerate(samples):
            if step >= args.fit_steps:
                break
            if i not in cache:
                cache[i] = load_clip(src, sample, spec)
            frames, texts, targets, vids = collate({k: v[None] for k, v in cache[i].items()})
            model.train()
            loss = model.candidate_losses(frames, model.tokenize(texts), targets, vids)["total"]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            if step in (args.fit_steps // 2, args.fit_steps):
                model.eval()
                row = {"steps": step, "seconds": round(time.perf_counter() - t0, 1),
                       "loss": round(loss.item(), 4)}
                for name, clips in clips_eval.items():
                    row[name] = candidate_scores(model, clips, None)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows, len(samples)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="ViewSAM checkpoint (RUN/final)")
    ap.add_argument("--fit-steps", type=int, default=0,
                    help="train a fresh CG alone for this many clips instead of --model")
    ap.add_argument("--labels", type=Path, help="Stage 1 output (with --fit-steps)")
    ap.add_argument("--fit-data", type=Path,
                    help="with --fit-steps: train on the GT of this other generated dataset's "
                         "train split (pre-training) instead of --labels")
    ap.add_argument("--train-config", type=Path,
                    help="JSON of TrainConfig overrides (with --fit-steps), e.g. image_size")
    ap.add_argument("--data", type=Path, required=True, help="generated dataset root")
    ap.add_argument("--domain", default="In-domain")
    ap.add_argument("--split", default="test")
    ap.add_argument("--clips", type=int, default=24, help="clips sampled (seed 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    import torch

    from raysys.training.data import ClipSpec, load_clip, plan_samples
    from raysys.training.sources import open_source

    torch.set_num_threads(args.threads)
    if args.fit_steps:
        if args.labels is None and args.fit_data is None:
            raise SystemExit("--fit-steps needs --labels LABELS (a `raysys label` output) "
                             "or --fit-data DATA (a generated dataset)")
        labels_meta = json.loads((args.labels / "config.json").read_text()) \
            if args.labels is not None else {}
        train_split = labels_meta.get("split", "train")
        from raysys.training.config import quick_config

        over = json.loads(args.train_config.read_text()) if args.train_config else {}
        cfg = quick_config(**{"max_samples": None, **over})
        spec = dataclasses.replace(ClipSpec.from_config(cfg, cfg.image_size), use_masks=False,
                               max_objects=32)
        clips_eval = {}
        for split in dict.fromkeys((train_split, args.split)):
            src = open_source("full", data=args.data, domain=args.domain, split=split)
            clips_eval[f"{split}_split"] = [load_clip(src, s, spec) for s in
                                            plan_samples(src, spec, args.clips, seed=1)]
        rows, n = fit(args, cfg, clips_eval)
        res = {"bench": "candidate_generator_fit",
               "labels": str(args.labels) if args.labels else None,
               "fit_data": str(args.fit_data) if args.fit_data else None,
               "data": str(args.data), "domain": args.domain, "clips": args.clips,
               "image_size": cfg.image_size, "training_samples": n, "lr": cfg.stages[0].lr,
               "train_config": over, "rows": rows}
    else:
        if args.model is None:
            raise SystemExit("give --model RUN/final (or --fit-steps N --labels LABELS)")
        res = _checkpoint(args)
    line = json.dumps(res)
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")
    return 0


def _checkpoint(args) -> dict:
    from raysys.report.diagnostics import candidate_scores
    from raysys.training.data import ClipSpec, crop_frame_of, load_clip, plan_samples
    from raysys.training.sources import open_source
    from raysys.viewsam.checkpoint import load_viewsam_checkpoint

    ck = load_viewsam_checkpoint(args.model)
    model, cfg = ck.model.eval(), ck.config
    if model.candidate_generator is None:
        raise SystemExit(f"{args.model}: this ViewSAM has no Candidate Generator (an ablation)")
    thr = (getattr(model, "calibration", None) or {}).get("objectness_threshold")
    src = open_source("full", data=args.data, domain=args.domain, split=args.split)
    # the run's clip shape (its stored TrainConfig fields), GT objects and true referring
    spec = ClipSpec(size=model.image_size, frames=int(cfg.get("clip_frames", 4)),
                    stride=int(cfg.get("clip_stride", 4)), step=int(cfg.get("frame_step", 1)),
                    max_objects=32, max_views=cfg.get("max_views"),
                    min_box_side=float(cfg.get("min_box_side", 2.0)), use_masks=False,
                    variant="standard", crop_frame=crop_frame_of(model.cfg))
    t0 = time.perf_counter()
    clips = [load_clip(src, s, spec) for s in plan_samples(src, spec, args.clips, seed=1)]
    res = {"bench": "candidate_generator", "model": str(args.model), "data": str(args.data),
           "domain": args.domain, "split": args.split, "clips": len(clips),
           "image_size": model.image_size, "proposals_per_frame":
           model.cfg.candidate_generator.num_proposals, "objectness_threshold": thr}
    res |= candidate_scores(model, clips, thr)
    res["grid_oracle_recall_iou50"] = grid_oracle_recall(
        clips, model.image_size, model.candidate_generator.stride(model.sam2.backbone_stride),
        model.cfg.candidate_generator.num_proposals)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


if __name__ == "__main__":
    raise SystemExit(main())
