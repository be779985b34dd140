"""Online tracking cost: frame sets per second and memory over a long stream.

Feeds a :class:`raysys.tracking.ViewSAMTracker` ``--frames`` synchronised frame sets (a
generated scene's frames, looped forward and backward so that objects keep moving and
stay in view) and samples, every ``--every`` frame sets, the tracker's own state
(``state_bytes``: memory banks, tracks, identities, buffered clip), the live tracks, the
identities and the process RSS. Prints one JSON object; the memory target is that
``state_bytes`` and RSS stay flat after warm-up (``growth_*`` compare the last quarter with
the second quarter of the samples).

    python benchmarks/speed/track.py --model RUN/final --data DATA --frames 2000
    python benchmarks/speed/track.py --frames 300          # random-init tiny model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _model(path: Path | None):
    if path is not None:
        from raysys.viewsam.checkpoint import load_viewsam_checkpoint

        return load_viewsam_checkpoint(path).model
    import torch

    from raysys.training.config import quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text

    torch.manual_seed(0)
    cfg = quick_config()
    return build_model(cfg, sam2_yaml_text(None, cfg.sam2_image_size)).eval()


def _stream(data: Path | None, domain: str, views: int, size: tuple[int, int]):
    """Endless list of frame sets (ping-pong over a scene) as uint8 arrays."""
    import numpy as np
    from PIL import Image

    if data is None:
        from raysys.synth import SynthConfig, generate

        data = Path("/tmp/raysys_bench_track_data")
        if not (data / "dataset.json").is_file():
            generate(SynthConfig(scenes=1, views=views, frames=60, splits=("test",),
                                 domains=("In-domain",)), data)
    from raysys.io.crtrack import list_frames, list_image_views
    from raysys.io.dataset import DatasetLayout

    layout = DatasetLayout(data, domain, "test")
    scene, vs = sorted(list_image_views(layout.image_root).items())[0]
    vs = vs[:views]
    paths = [dict(list_frames(layout.view_dir(scene, v))) for v in vs]
    frames = sorted(set.intersection(*(set(p) for p in paths)))
    sets = [[np.asarray(Image.open(p[f]).convert("RGB").resize(size)) for p in paths]
            for f in frames]
    return scene, vs, sets + sets[-2:0:-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="ViewSAM checkpoint (default: random tiny)")
    ap.add_argument("--data", type=Path, help="dataset root (default: a generated scene)")
    ap.add_argument("--domain", default="In-domain")
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--frames", type=int, default=2000, help="frame sets in the stream")
    ap.add_argument("--every", type=int, default=100, help="sample memory every k frame sets")
    ap.add_argument("--size", default="640x360", help="frame size WxH")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--expression", default="A person wearing a blue coat")
    ap.add_argument("--refer-threshold", type=float, default=None,
                    help="override the checkpoint's calibrated threshold (0 with "
                         "--objectness-threshold 0: every proposal opens a track, a stress "
                         "test of the bounded state)")
    ap.add_argument("--objectness-threshold", type=float, default=None)
    args = ap.parse_args(argv)
    import torch

    from raysys.tracking import TrackConfig, ViewSAMTracker

    torch.set_num_threads(args.threads)
    w, h = (int(x) for x in args.size.lower().split("x"))
    model = _model(args.model)
    scene, views, sets = _stream(args.data, args.domain, args.views, (w, h))
    tracker = ViewSAMTracker(model, args.expression, len(views), TrackConfig(
        keep_masks=False, refer_threshold=args.refer_threshold,
        objectness_threshold=args.objectness_threshold))
    samples, objects = [], 0
    t0 = time.perf_counter()
    for i in range(args.frames):
        for r in tracker.step(sets[i % len(sets)]):
            objects += sum(len(v) for v in r.views)
        if (i + 1) % args.every == 0:
            samples.append({"frame": i + 1, "seconds": round(time.perf_counter() - t0, 2),
                            "state_mib": round(tracker.state_bytes() / 2**20, 3),
                            "rss_mib": round(_rss_mib(), 1),
                            "live_tracks": tracker.num_live_tracks,
                            "identities": len(tracker.identities)})
    for r in tracker.flush():
        objects += sum(len(v) for v in r.views)
    dt = time.perf_counter() - t0
    q = max(1, len(samples) // 4)
    mid, last = samples[q:2 * q] or samples, samples[-q:]

    def growth(key):
        a = max(s[key] for s in mid)
        return round(max(s[key] for s in last) / a, 3) if a else None

    print(json.dumps({
        "bench": "track_stream", "model": str(args.model or "random-init tiny (quick config)"),
        "device": "cpu", "cpu": platform.processor() or platform.machine(),
        "threads": args.threads, "scene": scene, "views": len(views), "frame_size": [w, h],
        "clip_frames": tracker.cfg.clip_frames, "frames": args.frames,
        "refer_threshold": tracker.refer_threshold,
        "objectness_threshold": tracker.objectness_threshold,
        "max_tracks_per_view": tracker.cfg.max_tracks,
        "seconds": round(dt, 2), "frame_sets_per_s": round(args.frames / dt, 3),
        "view_frames_per_s": round(args.frames * len(views) / dt, 3),
        "objects_output": objects, "growth_state": growth("state_mib"),
        "growth_rss": growth("rss_mib"),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "samples": samples}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
