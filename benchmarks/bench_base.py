"""Quality of a SAM2 base on generated scenes it never saw: promptable video segmentation.

For clips of a dataset split's GT (all objects), SAM2 alone (no ViewSAM modules) is prompted
(a) with each object's box on every frame and (b) with its box on the first frame only,
then followed by its memory. Prints one JSON object with the mean mask IoU of (a), of (b)
on the frames after the first, and the same for a random-init base (the floor):

    python benchmarks/bench_base.py --data DATA --sam2-checkpoint embedded
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def _miou(model, clips, collate) -> tuple[float, float]:
    import torch

    from raysys.viewsam.viewsam import _slot_masks

    every, later = [], []
    with torch.no_grad():
        for c in clips:
            frames, texts, targets, vids = collate({k: v[None] for k, v in c.items()})
            out = model(frames, model.tokenize(texts), targets, view_ids=vids)
            tb, tv = model.teacher(targets)
            tm = _slot_masks(targets, tb, out.slot_index, frames.shape[-2:]) > 0.5
            pm = out.mask_logits > 0
            g = out.slot_index[:, None, None].expand(*tv.shape[:3], -1)
            vis = tv.gather(3, g) & out.slot_valid[:, None, None]
            inter = (pm & tm).flatten(-2).sum(-1).float()
            union = (pm | tm).flatten(-2).sum(-1).float().clamp(min=1)
            iou = inter / union  # (B, V, T, O)
            every.append(iou[vis])
            later.append(iou[:, :, 1:][vis[:, :, 1:]])
    return float(torch.cat(every).mean()), float(torch.cat(later).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="generated dataset root")
    ap.add_argument("--domain", default="In-domain")
    ap.add_argument("--split", default="test")
    ap.add_argument("--sam2-checkpoint", default="embedded")
    ap.add_argument("--clips", type=int, default=40)
    args = ap.parse_args(argv)
    import torch

    from raysys.training.data import ClipSpec, collate, load_clip, open_source, plan_samples
    from raysys.training.model import build_model, sam2_yaml_text
    from raysys.training.pretrain import pretrain_config

    torch.set_num_threads(1)
    cfg = pretrain_config()
    src = open_source("full", data=args.data, domain=args.domain, split=args.split)
    spec = ClipSpec.from_config(cfg, cfg.image_size)
    clips = [load_clip(src, s, spec) for s in plan_samples(src, spec, args.clips, seed=1)]
    yaml = sam2_yaml_text(None, cfg.sam2_image_size)
    res: dict = {"bench": "sam2_base_quality", "data": str(args.data), "domain": args.domain,
                 "split": args.split, "clips": len(clips), "size": cfg.image_size,
                 "clip_frames": cfg.clip_frames}
    for name, ckpt in (("checkpoint", args.sam2_checkpoint), ("random_init", None)):
        torch.manual_seed(0)
        t0 = time.perf_counter()
        row = {}
        for mode, source in (("box_every_frame", "teacher"), ("box_first_frame", "candidates")):
            mc = dataclasses.replace(cfg.model, prompt_source=source)
            model = build_model(dataclasses.replace(cfg, model=mc, sam2_checkpoint=ckpt),
                                yaml).eval()
            every, later = _miou(model, clips, collate)
            row[mode] = round(every if source == "teacher" else later, 4)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        res[name] = row
    res["sam2_checkpoint"] = args.sam2_checkpoint
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
