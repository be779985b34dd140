"""The tracking service under load: latency, throughput, state and autoscaling.

Starts the service (``raysys.serving``) on a local Ray, loopback only, and runs 1, 4 and 16
concurrent streams of a generated scene through it (each stream ``--frames`` frame sets
over HTTP, multipart JPEGs, with the protocol's client), bounded by ``--max-seconds``.
Measures per frame set the latency (p50/p95/p99), per phase the total frame sets per
second (distinct frame sets; those re-sent after a stream moved are counted apart), the
tracker state per stream (``GET /v1/streams/{id}``), and every half second
the number of running tracker replicas (up under load, back down after, when the last
phase has ended and the autoscaler's downscale delay has passed). The in-process tracker
(JPEG decoding + ``MultiExpressionTracker.step``, one torch thread, as a replica's) on
the same scene is the reference of the "served >= 85% at 1 stream" target; it is also
measured with torch's default threads, for the record. Each stream's client keeps
``--depth`` frame sets in flight (1: one at a time). Writes JSON and a PNG plot.

    python benchmarks/speed/serve.py                   # random-init 64 px model
    python benchmarks/speed/serve.py --depth 1         # clients that wait for each answer
    python benchmarks/speed/serve.py --model RUN/final --frames 32

The 1-stream phase and the in-process reference are each run ``--repeats`` times (3) and
compared by their medians: one 48-frame pass takes 3-5 s on the 2-core machine and varies
by several percent from run to run.
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from pathlib import Path

import numpy as np

OPEN = dict(refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0)


def _checkpoint(out: Path) -> Path:
    """A random-init tiny ViewSAM (64 px) whose SAM2 calls every object present."""
    import torch

    from raysys.config import to_dict
    from raysys.training.config import StageConfig, quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text
    from raysys.viewsam.checkpoint import model_state, write_checkpoint

    torch.manual_seed(0)
    cfg = quick_config(clip_frames=4, image_size=64, sam2_image_size=64, max_objects=4,
                       max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),))
    model = build_model(cfg, sam2_yaml_text(None, 64)).eval()
    with torch.no_grad():
        head = model.sam2.sam_mask_decoder.pred_obj_score_head
        last = head.layers[-1] if hasattr(head, "layers") else head
        last.weight.zero_()
        last.bias.fill_(5.0)
    write_checkpoint(out, {"model": model_state(model), "config": to_dict(cfg),
                           "build_spec": model.build_spec, "epoch": 1})
    return out


def _scene(root: Path, frames: int) -> tuple[str, list[list[bytes]]]:
    from raysys.io import crtrack
    from raysys.io.dataset import DatasetLayout
    from raysys.synth import SynthConfig, generate
    from raysys.tracking.run import plan_track_units

    if not (root / "dataset.json").is_file():
        generate(SynthConfig(seed=3, scenes=1, views=2, frames=frames, width=320, height=180,
                             people=4, cars=0, bicycles=0, expressions=1, splits=("test",),
                             domains=("In-domain",)), root)
    layout = DatasetLayout(root, "In-domain", "test")
    unit = plan_track_units(layout)[0]
    paths = {v: dict(crtrack.list_frames(layout.view_dir(unit.scene, v))) for v in unit.views}
    fnos = sorted(set.intersection(*(set(p) for p in paths.values())))
    return unit.text, [[paths[v][f].read_bytes() for v in unit.views] for f in fnos]


def in_process(ck: Path, text: str, frames, track: dict, threads: int,
               repeats: int = 1) -> float:
    """Frame sets per second of the tracker in this process (decode + step): the median
    of ``repeats`` passes after a warm-up pass."""
    import io

    import torch
    from PIL import Image

    from raysys.tracking import MultiExpressionTracker, TrackConfig
    from raysys.viewsam.checkpoint import load_viewsam_checkpoint

    torch.set_num_threads(threads)
    model = load_viewsam_checkpoint(ck, device="cpu").model
    fps = []
    for _ in range(1 + repeats):  # the first pass warms up
        tr = MultiExpressionTracker(model, [text], len(frames[0]),
                                    TrackConfig(**track, keep_masks=False))
        t0 = time.perf_counter()
        for fs in frames:
            tr.step([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in fs])
        tr.flush()
        fps.append(len(frames) / (time.perf_counter() - t0))
    return float(np.median(fps[1:]))


class _Replicas(threading.Thread):
    """Samples the running tracker replicas every ``every`` seconds."""

    def __init__(self, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self.stop, self.t0 = every, [], False, time.time()

    def count(self) -> int:
        from ray import serve

        try:
            d = serve.status().applications["raysys"].deployments["tracker"]
            return int(d.replica_states.get("RUNNING", 0))
        except Exception:  # noqa: BLE001  (app not up yet)
            return 0

    def run(self) -> None:
        while not self.stop:
            self.samples.append((round(time.time() - self.t0, 2), self.count()))
            time.sleep(self.every)


def phase(url: str, token: str | None, text: str, frames, streams: int,
          deadline: float, depth: int) -> dict:
    from raysys.serving.client import StreamClient

    lat: list[float] = []
    seqs: set[tuple[int, int]] = set()  # (stream, seq) answered: re-sends counted once
    state: list[int] = []
    errors: list[str] = []

    def one(k: int) -> None:
        c = StreamClient(url, token)

        def answered(seq: int, dt: float) -> None:
            lat.append(dt)
            seqs.add((k, seq))

        try:
            sid = c.create(text, len(frames[0]))
            c.run(sid, frames, on_answer=answered,
                  before=lambda s: _stop_at(deadline), delete=False, depth=depth)
            state.append(c.session.get(f"{url}/v1/streams/{sid}").json()["state_bytes"])
            c.session.delete(f"{url}/v1/streams/{sid}")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e)[:200])

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    ms = np.asarray(lat) * 1e3
    pct = (lambda q: round(float(np.percentile(ms, q)), 1) if ms.size else None)  # noqa: E731
    return {"streams": streams, "depth": depth, "frame_sets": len(seqs),
            "resent": len(lat) - len(seqs),
            "seconds": round(dt, 2), "frame_sets_per_s": round(len(seqs) / dt, 3),
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "state_bytes_per_stream": int(np.mean(state)) if state else None, "errors": errors}


def _stop_at(deadline: float) -> None:
    if time.time() > deadline:
        raise TimeoutError("benchmark time bound reached")


def _plot(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    ph = res["phases"]
    xs = np.arange(len(ph))
    for j, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        a.bar(xs + (j - 1) * 0.27, [p[q] or 0 for p in ph], 0.27, label=q[:3])
    a.set_xticks(xs, [f"{p['streams']} streams\n{p['frame_sets_per_s']:.1f} fs/s" for p in ph])
    a.set_ylabel("latency per frame set (ms)")
    a.legend()
    t, n = zip(*res["replicas"], strict=True) if res["replicas"] else ((), ())
    b.step(t, n, where="post")
    for p in ph:
        b.axvspan(p["start_s"], p["start_s"] + p.get("span_s", p["seconds"]), alpha=0.15)
    b.set_xlabel("seconds")
    b.set_ylabel("tracker replicas running")
    b.set_yticks(range(0, max(n, default=1) + 2))
    fig.suptitle(f"raysys serve on {res['machine']} (in-process {res['in_process_fps']:.1f} "
                 "frame sets/s)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="ViewSAM checkpoint (default: random tiny)")
    p.add_argument("--frames", type=int, default=48, help="frame sets per stream")
    p.add_argument("--streams", default="1,4,16")
    p.add_argument("--depth", type=int, default=4, help="frame sets in flight per stream")
    p.add_argument("--repeats", type=int, default=3, help="the 1-stream phase and the "
                   "in-process reference are run this many times; their medians are compared")
    p.add_argument("--max-replicas", type=int, default=3)
    p.add_argument("--max-seconds", type=float, default=900)
    p.add_argument("--work", type=Path, default=Path("/tmp/raysys_bench_serve"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_cpu.json"))
    p.add_argument("--plot", type=Path, default=Path("docs/img/serve.png"))
    a = p.parse_args()
    import ray

    from raysys.serving import app
    from raysys.serving.config import ServeConfig

    deadline = time.time() + a.max_seconds
    ck = a.model or (a.work / "ck" if (a.work / "ck").is_dir() else _checkpoint(a.work / "ck"))
    text, frames = _scene(a.work / f"data_{a.frames}", a.frames)
    track = dict(clip_frames=4, **OPEN)
    import torch

    all_threads = torch.get_num_threads()
    fps_all = in_process(ck, text, frames, track, all_threads)
    fps0 = in_process(ck, text, frames, track, 1, a.repeats)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    cfg = ServeConfig(model=str(ck), port=8765, track=track, min_replicas=1,
                      max_replicas=a.max_replicas, replica_cpus=0.5, ingress_cpus=0.25,
                      downscale_delay_s=10.0, max_queued_requests=64)
    app.start(cfg)
    mon = _Replicas()
    mon.start()
    res = {"machine": f"{platform.machine()} {platform.node()[:12]}", "in_process_fps":
           round(fps0, 3), "in_process_fps_default_threads": round(fps_all, 3),
           "default_threads": all_threads, "depth": a.depth, "frames_per_stream": len(frames),
           "views": len(frames[0]),
           "clip_frames": 4, "phases": []}
    try:
        # warm-up, not measured (as the in-process reference's first pass): one stream
        # through the replica, whose first clips pay for lazy kernel set-up
        phase(f"http://127.0.0.1:{cfg.port}", None, text, frames, 1, deadline, a.depth)
        mon.t0 = time.time()
        mon.samples.clear()
        for n in [int(x) for x in a.streams.split(",")]:
            start = round(time.time() - mon.t0, 2)
            runs = [phase(f"http://127.0.0.1:{cfg.port}", None, text, frames, n, deadline,
                          a.depth) for _ in range(a.repeats if n == 1 else 1)]
            r = sorted(runs, key=lambda x: x["frame_sets_per_s"])[len(runs) // 2]  # median
            if len(runs) > 1:
                r["frame_sets_per_s_runs"] = [x["frame_sets_per_s"] for x in runs]
            res["phases"].append({**r, "start_s": start,
                                  "span_s": round(time.time() - mon.t0 - start, 2)})
            print(json.dumps(res["phases"][-1]), flush=True)
        t_end = time.time() + cfg.downscale_delay_s + 25
        while time.time() < min(t_end, deadline + 60) and mon.count() > cfg.min_replicas:
            time.sleep(1)
        time.sleep(2)
    finally:
        mon.stop = True
        mon.join()
        app.stop()
        ray.shutdown()
    res["replicas"] = mon.samples
    ns = [n for _, n in mon.samples]
    res["replicas_max"], res["replicas_last"] = max(ns, default=0), ns[-1] if ns else 0
    one = res["phases"][0]["frame_sets_per_s"] if res["phases"] else 0
    res["served_vs_in_process_1_stream"] = round(one / fps0, 3)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    _plot(res, a.plot)
    print(json.dumps({k: v for k, v in res.items() if k != "replicas"}, indent=1))


if __name__ == "__main__":
    main()
