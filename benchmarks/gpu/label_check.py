"""GPU check of Stage 1 with the real SAM3 concept tracker (random weights) and OSNet.

Runs on the device machine, where Ray is absent: it calls the pipeline's stage functions
directly. One generated scene (3 views, 640x360); per view the bare sam3 video model
(``init_state`` + text prompt + ``propagate_in_video``, no raysys code) and then
``process_unit`` (``Sam3ConceptTracker.track`` + OSNet ``embed_tracklets``) on the same
frames; then ``SceneLabeler`` (association + re-prompting through the same tracker) and
two direct re-propagations from a ground-truth mask. Each stage reports its time, peak GPU
memory and, when it fails, the error; the other stages still run. Prints one JSON object
and writes it to ``$OUT/gpu_label_check.json`` when ``OUT`` is set.

    python3 benchmarks/gpu/label_check.py            # on the GPU machine (wheels in .whl/)
    .venv/bin/python benchmarks/gpu/label_check.py --dry-run   # CPU: imports + scene only

Random weights: the detector scores every query about the same, so a probe on the first
frame picks the score threshold, NMS is turned off (its mask IoU over up to 200 tied
detections is O(N^2 HW) memory) and ``max_objects`` caps the objects tracked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Report:
    """Stage records: seconds, peak GPU memory, error (a failed stage does not stop others)."""

    def __init__(self, budget_s: float):
        self.t0, self.budget_s = time.perf_counter(), budget_s
        self.data: dict = {"stages": {}}

    def run(self, name: str, fn) -> dict:
        """Run ``fn(record)`` as stage ``name``; a failure is recorded, not raised."""
        rec = self.data["stages"].setdefault(name, {})
        torch = sys.modules.get("torch")
        cuda = torch is not None and torch.cuda.is_available()
        if time.perf_counter() - self.t0 > self.budget_s:
            rec.update(ok=False, skipped=f"time budget of {self.budget_s:.0f} s spent")
            return rec
        if cuda:
            with _suppress():
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        try:
            fn(rec)
            rec["ok"] = True
        except Exception as e:  # report and go on with the other stages
            rec.update(ok=False, error=f"{type(e).__name__}: {e}"[:2000],
                       traceback=traceback.format_exc()[-2500:])
        finally:
            if cuda:
                with _suppress():  # after a CUDA error these raise again
                    torch.cuda.synchronize()
                    rec["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
                    rec["gpu_gib_after"] = round(torch.cuda.memory_allocated() / 2**30, 3)
            rec["seconds"] = round(time.perf_counter() - t, 3)
            self.flush()
        return rec

    def flush(self) -> None:
        """Write what is known so far to $OUT (a run killed by its timeout still reports)."""
        if os.environ.get("OUT"):
            d = {**self.data, "total_s": round(time.perf_counter() - self.t0, 2)}
            Path(os.environ["OUT"], "gpu_label_check.json").write_text(
                json.dumps(d, indent=1, default=str))

    def stage(self, name: str):
        """Decorator: run the decorated function now as stage ``name``."""
        def deco(fn):
            self.run(name, fn)
            return fn
        return deco


def _suppress():
    import contextlib

    return contextlib.suppress(Exception)


def _need(state: dict, *keys: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise RuntimeError(f"skipped: earlier stage failed ({', '.join(missing)} missing)")


def _quiet_sam3() -> None:
    """sam3 draws a progress bar per propagation and logs each capped detection."""
    import logging

    from tqdm.auto import tqdm

    def quiet(*a, **k):
        k["disable"] = True
        return tqdm(*a, **k)

    for mod in ("sam3.model.sam3_video_inference", "sam3.model.sam3_tracking_predictor",
                "sam3.model.io_utils"):
        if mod in sys.modules:
            sys.modules[mod].tqdm = quiet
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("sam3"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _bare(model, resource, text: str, n_frames: int | None = None) -> dict:
    """The sam3 video model alone: load, text prompt on frame 0, propagate forward."""
    import torch

    t0 = time.perf_counter()
    with torch.inference_mode():
        state = model.init_state(resource_path=resource)
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    n = state["num_frames"] if n_frames is None else min(n_frames, state["num_frames"])
    ids: set[int] = set()
    frames = 0
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        model.add_prompt(state, frame_idx=0, text_str=text)
        for _, out in model.propagate_in_video(state, start_frame_idx=0,
                                               max_frame_num_to_track=n - 1, reverse=False):
            frames += 1
            if out is not None:
                ids.update(int(i) for i in out["out_obj_ids"])
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    del state
    return {"frames": frames, "objects": len(ids), "load_s": round(t1 - t0, 3),
            "model_s": round(t2 - t1, 3), "fps_model": round(frames / (t2 - t1), 2),
            "fps_end_to_end": round(frames / (t2 - t0), 2)}


def _probe_threshold(model, frames_dir: str, text: str, target: int) -> dict:
    """Detection probabilities on frame 0 (thresholds 0, NMS off, 50 objects at most) and
    a threshold that lets about ``target`` through (random weights tie many scores)."""
    import numpy as np
    import torch

    saved = {k: getattr(model, k) for k in ("score_threshold_detection", "new_det_thresh",
                                             "max_num_objects")}
    model.score_threshold_detection = model.new_det_thresh = 0.0
    model.max_num_objects = 50
    try:
        with torch.inference_mode():
            state = model.init_state(resource_path=frames_dir)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            _, out = model.add_prompt(state, frame_idx=0, text_str=text)
    finally:
        for k, v in saved.items():
            setattr(model, k, v)
    p = np.sort(np.asarray(out["out_probs"], float))[::-1]
    if p.size == 0:
        thr = 0.0
    elif p.size > target and p[target - 1] > p[target]:
        thr = float(p[target - 1] + p[target]) / 2
    else:
        thr = float(p[min(target, p.size) - 1]) - 1e-3
    return {"n": int(p.size), "top": [round(float(x), 4) for x in p[:10]],
            "min": round(float(p.min()), 4) if p.size else None, "threshold": round(thr, 5)}


class CountingTracker:
    """The tracker as SceneLabeler sees it: counts re-propagations; after ``limit`` calls
    it returns the seed frame alone (keeps the check inside its time budget)."""

    def __init__(self, tracker, limit: int):
        self.tracker, self.limit = tracker, limit
        self.calls = self.skipped = self.frames = 0
        self.seconds = 0.0

    def track(self, video, category):
        return self.tracker.track(video, category)

    def repropagate(self, video, seed_frame, seed_mask, direction, category):
        import numpy as np

        from raysys.types import Tracklet

        if self.calls >= self.limit:
            self.skipped += 1
            box = seed_mask.to_box()
            return Tracklet(video.scene, video.view, 0, category, np.array([seed_frame]),
                            np.array([box.xywh]), np.array([1.0]), (seed_mask,))
        t = time.perf_counter()
        out = self.tracker.repropagate(video, seed_frame, seed_mask, direction, category)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        self.frames += len(out)
        return out


def _gt_seed(layout, scene: str, view: str):
    """(frame, MaskRLE) of the largest ground-truth mask on the middle annotated frame of a
    view (a smoke check may read ground truth; the pipeline never does)."""
    import pyarrow.parquet as pq

    from raysys.types import MaskRLE

    df = pq.read_table(layout.meta_dir(scene) / "masks" / f"{view}.parquet").to_pandas()
    frames = sorted(df["frame"].unique())
    rows = df[df["frame"] == frames[len(frames) // 2]]
    r = rows.loc[(rows["width"] * rows["height"]).idxmax()]
    return int(r["frame"]), MaskRLE.from_string(r["rle"])


def run(args) -> dict:
    rep = Report(args.budget_s)
    st: dict = {}
    d = rep.data
    d.update(dry_run=args.dry_run, frames=args.frames, views=args.views,
             categories=args.categories)
    tmp = tempfile.TemporaryDirectory(prefix="gpu_label_check_")
    work = Path(tmp.name)

    @rep.stage("imports")
    def _(rec):
        from importlib.metadata import PackageNotFoundError, version

        import torch

        import raysys.backends.concept_tracker  # noqa: F401
        import raysys.backends.sam3_tracker  # noqa: F401
        from raysys.labeling import scene_stage, tracking_stage  # noqa: F401
        from raysys.synth import SynthConfig  # noqa: F401

        heavy = [m for m in ("ray", "sam3", "torchreid", "transformers") if m in sys.modules]
        rec.update(modules_loaded_by_raysys_imports=heavy, torch=torch.__version__,
                   python=sys.version.split()[0], cuda=torch.cuda.is_available())
        if torch.cuda.is_available():
            rec["device"] = torch.cuda.get_device_name(0)
        for pkg in ("sam3", "torchreid", "iopath", "pycocotools", "ftfy", "timm", "triton"):
            try:
                rec[f"version_{pkg}"] = version(pkg)
            except PackageNotFoundError:
                rec[f"version_{pkg}"] = None
        if "ray" in heavy:
            raise RuntimeError("a raysys module imported ray at import time")

    @rep.stage("synth")
    def _(rec):
        from raysys.io.dataset import DatasetLayout
        from raysys.labeling.tracking_stage import plan_units
        from raysys.synth import SynthConfig, generate

        cfg = SynthConfig(seed=7, scenes=1, views=args.views, frames=args.frames, width=640,
                          height=360, splits=("test",), domains=("In-domain",))
        generate(cfg, work / "data", map_fn=lambda fn, xs: [fn(x) for x in xs])
        layout = DatasetLayout(work / "data", "In-domain", "test")
        units = [u for u in plan_units(layout) if u["category"] in args.categories]
        if not units:
            raise RuntimeError(f"no unit of categories {args.categories}")
        st.update(layout=layout, units=units, scene=units[0]["scene"],
                  view_dirs={u["view"]: u["view_dir"] for u in units})
        rec.update(scene=st["scene"], units=len(units), views=sorted(st["view_dirs"]))

    if args.dry_run:
        @rep.stage("cpu_refusal")
        def _(rec):
            from raysys.backends.concept_tracker import TRACKER_BACKENDS

            try:
                TRACKER_BACKENDS.build("sam3", device="cpu")
            except RuntimeError as e:
                rec["message"] = str(e)
            else:
                raise AssertionError("the sam3 backend built on CPU")
            rec["sam3_imported"] = "sam3" in sys.modules

        tmp.cleanup()
        return d

    @rep.stage("build_tracker")
    def _(rec):
        import torch

        from raysys.backends.sam3_tracker import Sam3ConceptTracker

        local = ROOT / ".whl" / "bpe_simple_vocab_16e6.txt.gz"
        bpe = args.bpe or (str(local) if local.is_file() else None)
        tracker = Sam3ConceptTracker(bpe_path=bpe, device="cuda", random_init=True,
                                     max_objects=args.max_objects, seed=0)
        _quiet_sam3()
        tracker.model.det_nms_thresh = 0.0  # see the module docstring
        st["tracker"] = tracker
        params = list(tracker.model.parameters())
        rec.update(params_m=round(sum(p.numel() for p in params) / 1e6, 1),
                   autocast_on_after_build=torch.is_autocast_enabled("cuda"),
                   params_finite=all(bool(torch.isfinite(p).all()) for p in params))

    @rep.stage("probe")
    def _(rec):
        _need(st, "tracker", "units")
        m = st["tracker"].model
        if args.score_threshold is not None:
            thr = args.score_threshold
        else:
            probe = _probe_threshold(m, st["units"][0]["view_dir"], args.categories[0],
                                     args.target_objects)
            rec.update(probe)
            thr = probe["threshold"]
        m.score_threshold_detection = m.new_det_thresh = float(thr)
        rec.update(score_threshold=thr, det_nms="off", max_objects=args.max_objects,
                   hotstart_delay=getattr(m, "hotstart_delay", None))

    @rep.stage("warmup")
    def _(rec):
        _need(st, "tracker", "units")
        rec.update(_bare(st["tracker"].model, st["units"][0]["view_dir"], args.categories[0], 8))

    @rep.stage("build_reid")
    def _(rec):
        import numpy as np
        import torch

        from raysys.backends import OSNetReID

        reid = OSNetReID(name="osnet_x1_0", checkpoint="random", device="cuda",
                         batch_size=args.reid_batch)
        crops = [np.random.default_rng(0).integers(0, 255, (160, 64, 3), dtype=np.uint8)] * 512
        reid.embed(crops[:64])
        torch.cuda.synchronize()
        t = time.perf_counter()
        reid.embed(crops)
        torch.cuda.synchronize()
        rec["osnet_crops_per_s_incl_preprocessing"] = round(512 / (time.perf_counter() - t), 1)
        st["reid"] = reid

    from raysys.labeling.config import LabelConfig

    lcfg = LabelConfig(tracker="sam3", reid="osnet", device="cuda", reid_batch=args.reid_batch,
                       tracker_options={"random_init": True, "max_objects": args.max_objects},
                       reid_options={"name": "osnet_x1_0", "checkpoint": "random"})
    out = work / "labels"
    unit_files: list[str] = []
    per_view: list[dict] = []
    for unit in st.get("units", []):
        tag = f"{unit['view']}_{unit['category']}"

        @rep.stage(f"bare_{tag}")
        def _(rec, unit=unit):
            _need(st, "tracker")
            rec.update(_bare(st["tracker"].model, unit["view_dir"], unit["category"]))

        @rep.stage(f"pipeline_{tag}")
        def _(rec, unit=unit, tag=tag):
            _need(st, "tracker", "reid")
            from raysys.io.tables import read_table
            from raysys.labeling.tracking_stage import process_unit, unit_path

            s = process_unit(unit, st["tracker"], st["reid"], lcfg, out)
            crops = read_table(unit_path(out, unit)).num_rows
            unit_files.append(str(unit_path(out, unit)))
            rec.update(frames=s["frames"], tracklets=s["tracklets"], crops=crops,
                       track_s=round(s["track_s"], 3), embed_s=round(s["embed_s"], 3),
                       tracking_fps=round(s["frames"] / s["track_s"], 2),
                       reid_crops_per_s=round(crops / max(s["embed_s"], 1e-9), 1))
            b = d["stages"].get(f"bare_{tag}", {})
            if b.get("ok"):
                rec["ratio_vs_bare_end_to_end"] = round(rec["tracking_fps"] / b["fps_end_to_end"],
                                                        3)
                rec["ratio_vs_bare_model"] = round(rec["tracking_fps"] / b["fps_model"], 3)
                per_view.append(rec)

    @rep.stage("scene_labeler")
    def _(rec):
        _need(st, "tracker", "scene")
        if not unit_files:
            raise RuntimeError("skipped: no unit file was written")
        from raysys.labeling.scene_stage import SceneLabeler

        counting = CountingTracker(st["tracker"], args.max_reprompts)
        from raysys.config import to_dict

        stats = SceneLabeler(st["scene"], st["view_dirs"], to_dict(lcfg), str(out),
                             tracker_loader=lambda c: counting).run(unit_files)
        rec.update({k: (round(v, 3) if isinstance(v, float) else v) for k, v in stats.items()})
        rec.update(repropagate_calls=counting.calls, repropagate_skipped=counting.skipped,
                   repropagate_frames=counting.frames,
                   repropagate_s=round(counting.seconds, 3),
                   repropagate_fps=round(counting.frames / max(counting.seconds, 1e-9), 2))

    @rep.stage("repropagate_direct")
    def _(rec):
        _need(st, "tracker", "layout")
        from raysys.io.video import VideoFrames

        view = sorted(st["view_dirs"])[0]
        video = VideoFrames(st["scene"], view, st["view_dirs"][view])
        frame, mask = _gt_seed(st["layout"], st["scene"], view)
        for direction in ("forward", "backward"):
            t = time.perf_counter()
            tl = st["tracker"].repropagate(video, frame, mask, direction, args.categories[0])
            dt = time.perf_counter() - t
            frames = tl.frames.tolist()
            assert frame in frames, "the seed frame is missing"
            side = [f for f in frames if (f < frame if direction == "forward" else f > frame)]
            assert not side, f"{direction} re-propagation has frames {side} past the seed"
            rec[direction] = {"seed_frame": frame, "frames": len(tl), "seconds": round(dt, 3),
                              "first": frames[0], "last": frames[-1],
                              "mean_score": round(float(tl.scores.mean()), 3)}

    d["stages"]["text_describer"] = {
        "ok": True, "skipped": "MiniLM's weights (~90 MB) exceed the 64 MiB the device "
        "machine can be sent; the colours describer needs no GPU"}
    if per_view:
        d["summary"] = {
            "tracking_fps": [r["tracking_fps"] for r in per_view],
            "ratio_vs_bare_end_to_end": [r["ratio_vs_bare_end_to_end"] for r in per_view],
            "ratio_vs_bare_model": [r["ratio_vs_bare_model"] for r in per_view],
            "reid_crops_per_s": [r["reid_crops_per_s"] for r in per_view],
            "tracklets": [r["tracklets"] for r in per_view],
            "peak_gpu_gib": max(r.get("peak_gpu_gib", 0) for r in d["stages"].values()),
        }
    tmp.cleanup()
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true",
                    help="imports + scene generation only (runs on CPU)")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--categories", nargs="+", default=["person"])
    ap.add_argument("--bpe", default=None, help="bpe_simple_vocab_16e6.txt.gz (default: .whl/)")
    ap.add_argument("--score-threshold", type=float, default=None,
                    help="detection threshold (default: probed on the first frame)")
    ap.add_argument("--target-objects", type=int, default=6,
                    help="detections the probed threshold lets through on frame 1")
    ap.add_argument("--max-objects", type=int, default=6)
    ap.add_argument("--max-reprompts", type=int, default=12,
                    help="re-propagations SceneLabeler may run (then seed frame only)")
    ap.add_argument("--reid-batch", type=int, default=256)
    ap.add_argument("--budget-s", type=float, default=330.0,
                    help="stages starting after this many seconds are skipped")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))  # the device machine has raysys only as this checkout
    os.environ.setdefault("LOG_LEVEL", "ERROR")  # sam3's loggers
    t0 = time.perf_counter()
    d = run(args)
    d["total_s"] = round(time.perf_counter() - t0, 2)
    d["ok"] = all(s.get("ok") for s in d["stages"].values())
    text = json.dumps(d, indent=1, default=str)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_label_check.json").write_text(text)


if __name__ == "__main__":
    main()
