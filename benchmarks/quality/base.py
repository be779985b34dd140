"""Quality of a SAM2 base on generated scenes it never saw: promptable video segmentation.

Clips of a dataset split's GT (one view, ``T`` frames, the objects visible on the first
frame; every category) go through SAM2 alone as the tracker runs it
(:func:`raysys.training.pretrain_base.evaluate_base`): (a) memory-only, the object's box on
the first frame and SAM2's memory after it (IoU over the visible object-frames after the
first); (b) box-prompted, its box on every visible frame. The same for a random-init base
(the floor). ``--speed`` also times CPU inference per frame (image encoder) and per
object-frame (memory attention + mask decoder + memory encoder). Prints one JSON line:

    python benchmarks/quality/base.py --data DATA --sam2-checkpoint embedded
    python benchmarks/quality/base.py --data DATA --sam2-checkpoint RUN/sam2_base.pt --speed
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _speed(sam2, clips, repeats: int = 2) -> dict:
    """CPU seconds per frame of the image encoder and per object-frame of tracking."""
    import torch

    from raysys.training.pretrain_base import backbone_features, track_clips

    c = clips[0]
    one = c.clip == 0
    single = type(c)(frames=c.frames[:1], clip=c.clip[one], masks=c.masks[one],
                     boxes=c.boxes[one], visible=c.visible[one])
    t, n = single.frames.shape[1], single.num_objects
    first = torch.zeros_like(single.visible)
    first[:, 0] = True
    sam2.eval()
    enc, full = [], []
    with torch.no_grad():
        track_clips(sam2, single, first)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            backbone_features(sam2, single.frames)
            enc.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            track_clips(sam2, single, first)
            full.append(time.perf_counter() - t0)
    e, f = min(enc), min(full)
    return {"frames": t, "objects": n, "encode_s_per_frame": round(e / t, 4),
            "track_s_per_object_frame": round(max(f - e, 0.0) / (t * n), 4),
            "s_per_frame_with_objects": round(f / t, 4), "torch_threads":
            torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="generated dataset root")
    ap.add_argument("--domain", default="In-domain")
    ap.add_argument("--split", default="test")
    ap.add_argument("--sam2-checkpoint", default="embedded",
                    help="'embedded', a SAM2 .pt (e.g. a pretrain-base run's sam2_base.pt)")
    ap.add_argument("--image-size", type=int,
                    help="model input side (default: the checkpoint's own)")
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--clip-frames", type=int, default=8)
    ap.add_argument("--max-objects", type=int, default=6)
    ap.add_argument("--scenes", type=int, help="first N scenes of the split (default all)")
    ap.add_argument("--seed", type=int, default=0, help="clip sampling seed")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    ap.add_argument("--speed", action="store_true", help="also time CPU inference")
    ap.add_argument("--no-floor", action="store_true", help="skip the random-init floor")
    args = ap.parse_args(argv)
    import torch

    from raysys.training.pretrain_base import (
        PretrainConfig,
        ScenePool,
        eval_clip_batches,
        evaluate_base,
        load_base,
        load_dataset_scenes,
    )
    from raysys.viewsam.base import resolve_sam2_checkpoint, sam2_image_size
    from raysys.viewsam.safe_load import read_sam2_file

    torch.set_num_threads(args.threads)
    size = args.image_size
    if size is None:
        payload = read_sam2_file(resolve_sam2_checkpoint(args.sam2_checkpoint))
        size = sam2_image_size(payload["yaml"]) if payload.get("yaml") else 256
    cfg = PretrainConfig(image_size=size, clip_frames=args.clip_frames,
                         max_objects=args.max_objects, steps=1)
    t0 = time.perf_counter()
    scenes = load_dataset_scenes(args.data, args.domain, args.split, size, args.scenes)
    clips = eval_clip_batches(ScenePool(scenes), cfg, args.clips, seed=args.seed)
    res: dict = {"bench": "sam2_base_quality", "data": str(args.data), "domain": args.domain,
                 "split": args.split, "scenes": len(scenes),
                 "clips": sum(int(c.frames.shape[0]) for c in clips),
                 "objects": sum(c.num_objects for c in clips), "size": size,
                 "clip_frames": args.clip_frames, "sam2_checkpoint": args.sam2_checkpoint,
                 "load_seconds": round(time.perf_counter() - t0, 1)}
    runs = [("checkpoint", args.sam2_checkpoint)] + ([] if args.no_floor else
                                                      [("random_init", None)])
    for name, ckpt in runs:
        torch.manual_seed(0)
        sam2 = load_base(ckpt, size)
        t0 = time.perf_counter()
        ev = evaluate_base(sam2, clips)
        row = {k: ev[k] for k in ("memory_iou", "box_iou", "memory_false_present",
                                  "box_false_present", "memory_iou_per_frame")}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        if args.speed and name == "checkpoint":
            row["speed"] = _speed(sam2, clips)
        res[name] = row
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
