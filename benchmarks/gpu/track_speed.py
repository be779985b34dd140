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

* ``live_<n>obj``: the tracker with exactly ``n`` live tracks per view (external proposals:
  a fixed grid of ``n`` boxes, referred), for ``--live-objects`` (default 1, 8, 16): how
  the cost of a frame set grows with the objects (issue #26: 16 objects <= 1.5x of 1).
* ``expressions_<E>``: the ``E`` = ``--expressions`` expressions of one scene in one
  :class:`raysys.tracking.MultiExpressionTracker` against ``E`` separate trackers run one
  after the other on the same frames (4 referred grid boxes per view each).
* ``long_stream``: ``--long`` frame sets (the generated ones, cycled) through one tracker
  with 8 live tracks per view; peak memory per quarter of the stream (GPU: allocator
  peak; CPU: the tracker's ``state_bytes``), ``last / second`` quarter.

Figures are view-frames per second (one image of one camera = one view-frame) after a
warm-up, with peak GPU memory; ``ratios`` sums up the issue's targets. Prints one JSON
object; writes ``$OUT/gpu_track_speed.json`` when ``OUT`` is set.

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


def _grid(n: int, w: int, h: int):
    """``n`` person-sized boxes (xyxy input pixels) on a fixed grid."""
    import numpy as np

    cols = max(1, int(np.ceil(np.sqrt(n * w / h))))
    rows = int(np.ceil(n / cols))
    bw, bh = w / cols, h / rows
    return np.array([[c * bw + bw * 0.15, r * bh + bh * 0.1, (c + 1) * bw - bw * 0.15,
                      (r + 1) * bh - bh * 0.1] for r in range(rows) for c in range(cols)][:n],
                    dtype=np.float32)


def _feed(tracker, sets, warm, device, torch) -> tuple[float, int]:
    """Step ``tracker`` through ``sets``; seconds and frame sets after ``warm``."""
    t0, n = None, 0
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for i, fs in enumerate(sets):
            if i == warm:
                _sync(torch, device)
                t0 = time.perf_counter()
            tracker.step(fs)
            n += t0 is not None
        tracker.flush()
        _sync(torch, device)
    return time.perf_counter() - t0, n


def _fixed(n: int, sets):
    """Tracker settings and proposals for exactly ``n`` referred objects per view."""
    from raysys.tracking import TrackConfig

    h, w = sets[0][0].shape[:2]
    boxes = _grid(n, w, h)
    cfg = TrackConfig(keep_masks=False, max_tracks=n, refer_threshold=0.5,
                      objectness_threshold=0.0, min_refer=0.0)
    return cfg, (lambda g, k: (boxes, [1.0] * n, None))


def run_live(model, sets, device, n: int, warm: int) -> dict:
    import torch

    from raysys.tracking import ViewSAMTracker

    cfg, fn = _fixed(n, sets)
    tracker = ViewSAMTracker(model, "a person", len(sets[0]), cfg, proposals=fn)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    dt, k = _feed(tracker, sets, warm, device, torch)
    v = len(sets[0])
    return {"live_objects_per_view": n, "frame_sets": k, "seconds": round(dt, 3),
            "view_frames_per_s": round(k * v / dt, 2), "peak_mem_gib": _peak(torch, device)}


EXPRESSIONS = ("a man in a red coat and black trousers", "a woman wearing a white coat",
               "a person carrying a black backpack", "a man in a gray cap",
               "a person wearing blue trousers", "a person riding a bicycle",
               "a woman in a yellow coat and white shoes", "a person wearing a green coat",
               "a man carrying a handbag", "a person in a brown coat and gray trousers",
               "a man wearing a black helmet", "a person in an orange coat")


def run_expressions(model, sets, device, e: int, warm: int) -> dict:
    import torch

    from raysys.tracking import MultiExpressionTracker, ViewSAMTracker

    texts = [EXPRESSIONS[i % len(EXPRESSIONS)] for i in range(e)]
    cfg, fn = _fixed(4, sets)
    v = len(sets[0])
    multi, k = _feed(MultiExpressionTracker(model, texts, v, cfg, proposals=fn), sets, warm,
                     device, torch)
    separate = sum(_feed(ViewSAMTracker(model, t, v, cfg, proposals=fn), sets, warm, device,
                         torch)[0] for t in texts)
    return {"expressions": e, "frame_sets": k, "multi_s": round(multi, 3),
            "separate_s": round(separate, 3), "speedup": round(separate / multi, 2)}


def run_long(model, sets, device, total: int, warm: int) -> dict:
    import torch

    from raysys.tracking import ViewSAMTracker

    cfg, fn = _fixed(8, sets)
    tracker = ViewSAMTracker(model, "a person", len(sets[0]), cfg, proposals=fn)
    quarter, peaks, states = total // 4, [], []
    t0 = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for i in range(total):
            if i % quarter == 0 and device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            tracker.step(sets[i % len(sets)])
            if (i + 1) % quarter == 0:
                _sync(torch, device)
                peaks.append(torch.cuda.max_memory_allocated() if device.type == "cuda"
                             else None)
                states.append(tracker.state_bytes())
    ref = peaks if device.type == "cuda" else states
    return {"frame_sets": total, "seconds": round(time.perf_counter() - t0, 1),
            "peak_mem_bytes_per_quarter": peaks, "state_bytes_per_quarter": states,
            "last_over_second_quarter": round(ref[3] / ref[1], 4)}


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


def _ratios(runs: dict, args) -> dict:
    """The issue's targets from the runs that ran (None where a run is missing)."""
    def get(name, key):
        r = runs.get(name) or {}
        return r.get(key)

    def div(a, b):
        return None if a is None or not b else round(a / b, 3)

    lo, hi = min(args.live_objects), max(args.live_objects)
    t = {n: div(1.0, get(f"live_{n}obj", "view_frames_per_s")) for n in args.live_objects}
    return {
        "viewsam_8obj_over_bare_8obj_view_frames_per_s":
            div(get("live_8obj", "view_frames_per_s"), get("sam2_bare_8obj", "view_frames_per_s")),
        f"time_{hi}obj_over_{lo}obj": div(t.get(hi), t.get(lo)),
        f"expressions_{args.expressions}_speedup": get(f"expressions_{args.expressions}",
                                                       "speedup"),
        "long_stream_last_over_second_quarter": get("long_stream", "last_over_second_quarter"),
        "targets": {"viewsam_8obj_over_bare_8obj": ">= 4", "time_16obj_over_1obj": "<= 1.5",
                    "expressions_10_speedup": ">= 5", "long_stream": "<= 1.05"},
    }


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
    ap.add_argument("--live-objects", type=int, nargs="+", default=[1, 8, 16],
                    help="tracker: live tracks per view")
    ap.add_argument("--expressions", type=int, default=10,
                    help="expressions of one scene: one tracker for all vs one each (0: skip)")
    ap.add_argument("--long", type=int, default=2000,
                    help="frame sets of the long-stream memory run (0: skip)")
    ap.add_argument("--skip", nargs="*", default=[],
                    help="runs to skip: viewsam, live, expressions, long, bare")
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
    if "viewsam" not in args.skip:
        record("viewsam_default", partial(run_viewsam, model, sets, device, False, args.warm))
        record("viewsam_stress", partial(run_viewsam, model, sets, device, True, args.warm))
    if "live" not in args.skip:
        for n in args.live_objects:
            record(f"live_{n}obj", partial(run_live, model, sets, device, n, args.warm))
    if "expressions" not in args.skip and args.expressions:
        record(f"expressions_{args.expressions}",
               partial(run_expressions, model, sets, device, args.expressions, args.warm))
    if "long" not in args.skip and args.long:
        record("long_stream", partial(run_long, model, sets, device, args.long, args.warm))
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if "bare" not in args.skip:
        for n in args.objects:
            record(f"sam2_bare_{n}obj", lambda n=n: run_bare(args.sam2_config, sets, device, n,
                                                             args.warm))
    res["ratios"] = _ratios(res["runs"], args)
    text = json.dumps(res, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_track_speed.json").write_text(text)


if __name__ == "__main__":
    main()
