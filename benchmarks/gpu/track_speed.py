"""GPU check of tracking speed: the online ViewSAM tracker against the bare SAM2 video
predictor, on the same frames, with the SAM2.1 Hiera-B+ config (random init, bf16 autocast).

Runs on the device machine, where Ray is absent: it uses the tracker object directly.
One generated scene (``--views`` views, ``--frames`` frame sets at ``--size``):

* ``viewsam``: :class:`raysys.tracking.ViewSAMTracker` fed one synchronised frame set at a
  time (clips of T = 8; everything included: image encoder with view token and VC-CMA over
  the clip, Candidate Generator, per-track SAM2 memory attention + mask decoder + memory
  encoder, BAR, CGCT embeddings, identity assignment). Run twice: with its default
  thresholds, and with every proposal allowed to open a track (``--stress``: up to
  ``max_tracks`` = 8 tracks per view), reporting the mean live tracks per view so the two
  can be compared with the bare predictor at 1 and 8 objects.
* ``sam2_bare``: ``sam2.build_sam2_video_predictor`` with the same YAML (no raysys code),
  per view ``init_state`` on the same frames written as JPEGs, ``add_new_points_or_box``
  with 1 or 8 boxes on frame 0, then ``propagate_in_video``; timed is the propagation
  (frames are decoded in ``init_state``, which is not timed).

Figures are view-frames per second (one image of one camera = one view-frame) after a
warm-up, with peak GPU memory. Prints one JSON object; writes ``$OUT/gpu_track_speed.json``
when ``OUT`` is set.

    python3 benchmarks/gpu/track_speed.py                       # device machine
    .venv/bin/python benchmarks/gpu/track_speed.py --device cpu --sam2-config tiny \\
        --text-encoder minilm --frames 16 --size 320x180       # CPU dry run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _frames(views: int, frames: int, size: tuple[int, int]):
    """One generated scene's synchronised frame sets, (T, V) uint8 arrays."""
    import numpy as np
    from PIL import Image

    from raysys.io.crtrack import list_frames, list_image_views
    from raysys.io.dataset import DatasetLayout
    from raysys.synth import SynthConfig, generate

    root = Path(tempfile.mkdtemp(prefix="gpu_track_"))
    w, h = size
    generate(SynthConfig(scenes=1, views=views, frames=frames, width=w, height=h,
                         splits=("test",), domains=("In-domain",)), root)
    layout = DatasetLayout(root, "In-domain", "test")
    scene, vs = sorted(list_image_views(layout.image_root).items())[0]
    paths = [dict(list_frames(layout.view_dir(scene, v))) for v in vs[:views]]
    idx = sorted(set.intersection(*(set(p) for p in paths)))
    return [[np.asarray(Image.open(p[f]).convert("RGB")) for p in paths] for f in idx]


def _sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak(torch, device):
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None


def run_viewsam(model, sets, device, stress: bool, warm: int) -> dict:
    import torch

    from raysys.tracking import TrackConfig, ViewSAMTracker

    t_enc = []
    enc = model.encode_clip

    def timed_encode(*a, **k):  # split the clip encoder's share out of the total
        _sync(torch, device)
        t = time.perf_counter()
        out = enc(*a, **k)
        _sync(torch, device)
        t_enc.append(time.perf_counter() - t)
        return out

    model.encode_clip = timed_encode
    cfg = TrackConfig(keep_masks=False, refer_threshold=0.0 if stress else None,
                      objectness_threshold=0.0 if stress else None, min_refer=0.0 if stress
                      else None)
    tracker = ViewSAMTracker(model, "a man in a red coat and black trousers", len(sets[0]), cfg)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    live, t0, n_timed = [], None, 0
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for i, fs in enumerate(sets):
                if i == warm:  # a clip boundary: warm-up clips (allocator, autotune) done
                    _sync(torch, device)
                    t0, t_enc[:] = time.perf_counter(), []
                tracker.step(fs)
                if t0 is not None:
                    n_timed += 1
                live.append(tracker.num_live_tracks / len(fs))
            tracker.flush()
            _sync(torch, device)
    finally:
        del model.encode_clip
    dt = time.perf_counter() - t0
    v = len(sets[0])
    return {"frame_sets": n_timed, "views": v, "seconds": round(dt, 3),
            "frame_sets_per_s": round(n_timed / dt, 2),
            "view_frames_per_s": round(n_timed * v / dt, 2),
            "clip_encoder_share": round(sum(t_enc) / dt, 3),
            "mean_live_tracks_per_view": round(sum(live[warm:]) / max(len(live[warm:]), 1), 2),
            "identities": len(tracker.identities), "peak_mem_gib": _peak(torch, device)}


def run_bare(cfg_name: str, sets, device, objects: int, warm: int) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from raysys.viewsam.base import resolve_sam2_config

    if Path(cfg_name).is_file() or cfg_name == "tiny":
        # a local YAML (the CPU dry run): Hydra's compose finds only package configs, so
        # build the same SAM2VideoPredictor with the same overrides from the file
        from raysys.baselines.sam2_video import Sam2VideoTracker

        pred = Sam2VideoTracker(cfg_name, device=str(device)).predictor
    else:  # the bare sam2 package call, no raysys code
        from sam2.build_sam import build_sam2_video_predictor

        resolve_sam2_config(cfg_name)  # a clear error for an unknown name
        pred = build_sam2_video_predictor(cfg_name, ckpt_path=None, device=str(device))
    h, w = sets[0][0].shape[:2]
    n_views, total_frames, total_s = len(sets[0]), 0, 0.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # a fixed grid of person-sized boxes: with random weights content does not change cost
    grid = [(x * w / 4 + w / 40, y * h / 2 + h / 20, (x + 1) * w / 4 - w / 40,
             (y + 1) * h / 2 - h / 20) for y in range(2) for x in range(4)][:objects]
    with tempfile.TemporaryDirectory() as tmp, \
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for k in range(n_views):
            d = Path(tmp) / f"view{k}"
            d.mkdir()
            for i, fs in enumerate(sets):
                Image.fromarray(fs[k]).save(d / f"{i}.jpg", quality=95)
            state = pred.init_state(str(d))
            for j, b in enumerate(grid):
                pred.add_new_points_or_box(state, frame_idx=0, obj_id=j + 1,
                                           box=np.asarray(b, dtype=np.float32))
            _sync(torch, device)
            t, n = None, 0
            for fi, _ids, _masks in pred.propagate_in_video(state):
                if fi == warm:
                    _sync(torch, device)
                    t = time.perf_counter()
                if t is not None:
                    n += 1
            _sync(torch, device)
            total_s += time.perf_counter() - t
            total_frames += n
            pred.reset_state(state)
    return {"objects_per_view": objects, "views": n_views, "view_frames": total_frames,
            "seconds": round(total_s, 3), "view_frames_per_s": round(total_frames / total_s, 2),
            "frame_sets_per_s": round(total_frames / n_views / total_s, 2),
            "peak_mem_gib": _peak(torch, device)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_b+.yaml")
    ap.add_argument("--text-encoder", default="random:roberta-base")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--frames", type=int, default=48, help="frame sets (first 8 warm up)")
    ap.add_argument("--warm", type=int, default=8)
    ap.add_argument("--size", default="1280x720", help="frame size WxH")
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 8],
                    help="bare predictor: box prompts per view")
    args = ap.parse_args()
    import torch

    from raysys.viewsam import build_viewsam

    device = torch.device(args.device)
    size = tuple(int(x) for x in args.size.lower().split("x"))
    res: dict = {"check": "track_speed", "torch": torch.__version__,
                 "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                 "dtype": "bf16 autocast" if device.type == "cuda" else "fp32",
                 "sam2_config": args.sam2_config, "text_encoder": args.text_encoder,
                 "frame_size": list(size), "views": args.views, "frame_sets": args.frames,
                 "warm_frame_sets": args.warm, "runs": {}}
    t = time.perf_counter()
    sets = _frames(args.views, args.frames, size)
    res["synth_s"] = round(time.perf_counter() - t, 2)

    def record(name, fn):
        t = time.perf_counter()
        try:
            res["runs"][name] = fn()
        except Exception as e:  # record and go on with the other runs
            res["runs"][name] = {"error": f"{type(e).__name__}: {e}"[:1500],
                                 "trace": traceback.format_exc()[-2000:]}
        res["runs"][name]["wall_s"] = round(time.perf_counter() - t, 2)
        print(json.dumps({name: res["runs"][name]}), flush=True)

    torch.manual_seed(0)
    t = time.perf_counter()
    model = build_viewsam(sam2_config=args.sam2_config, text_encoder=args.text_encoder,
                          freeze_base=True, device=str(device)).eval()
    res["build_s"] = round(time.perf_counter() - t, 2)
    res["image_size"] = int(model.image_size)
    record("viewsam_default", partial(run_viewsam, model, sets, device, False, args.warm))
    record("viewsam_stress", partial(run_viewsam, model, sets, device, True, args.warm))
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    for n in args.objects:
        record(f"sam2_bare_{n}obj", lambda n=n: run_bare(args.sam2_config, sets, device, n,
                                                         args.warm))
    text = json.dumps(res, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_track_speed.json").write_text(text)


if __name__ == "__main__":
    main()
