"""Per-frame person detection of the classical tracker: the learned detector vs the matched filter.

For each seed, generate the In-domain test split with the `raysys synth` defaults (2 scenes,
3 views, 60 frames, 20 people; seeds the shipped detector was not trained on) and score, on
every frame of every view, the person boxes of

* ``matched_filter``: ``detect_frame`` with ``person_detector=None`` (blob splitting, no
  weights);
* ``learned``: ``detect_frame`` with the shipped detector (``person_detector="embedded"``,
  or ``--weights FILE``) at its default threshold,

against the GT person boxes (evaluation only): recall, precision and F1 at IoU 0.5 (one-to-one
Hungarian matching per frame), also split by how visible the person is and whether they
move. Also timed: the detector's forward pass per frame on this machine. Prints JSON
(``--json`` also writes it):

    .venv/bin/python benchmarks/quality/person_detector.py [--seeds 0 1 2 3 4] [--weights F]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from raysys.commands.options import write_json


def _match(gt, boxes):
    """Indices of GT boxes matched at IoU >= 0.5 (Hungarian on IoU)."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from raysys.eval.pairs import iou_xywh

    if not len(gt) or not len(boxes):
        return np.zeros(0, int)
    iou = np.array([iou_xywh(gt, np.repeat(b[None], len(gt), 0)) for b in boxes]).T
    r, c = linear_sum_assignment(-iou)
    return r[iou[r, c] >= 0.5]


def _f1(tp, n_gt, n_pred):
    return {"recall": round(tp / max(n_gt, 1), 4), "precision": round(tp / max(n_pred, 1), 4),
            "F1": round(2 * tp / max(n_gt + n_pred, 1), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--weights", default="embedded", help="detector weights (default: shipped)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    import dataclasses

    import numpy as np
    import pyarrow.parquet as pq
    import torch

    from raysys.backends.classical.config import ClassicalTrackerConfig
    from raysys.backends.classical.detect import detect_frame
    from raysys.backends.classical.video_state import VideoState
    from raysys.io.dataset import DatasetLayout
    from raysys.io.gt import load_scene_tracks
    from raysys.io.video import VideoFrames
    from raysys.synth import SynthConfig, generate

    torch.set_num_threads(args.threads)
    learned_cfg = ClassicalTrackerConfig(person_detector=args.weights)
    blob_cfg = dataclasses.replace(learned_cfg, person_detector=None)
    names = ("matched_filter", "learned")
    counts = {k: {"all": [0, 0, 0], "partly_hidden": [0, 0], "still": [0, 0]} for k in names}
    per_seed, net_s, net_frames = [], 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            root = Path(tmp) / f"data-{seed}"
            generate(SynthConfig(seed=seed, splits=("test",), domains=("In-domain",)), root)
            layout = DatasetLayout(root, "In-domain", "test")
            seed_counts = {k: [0, 0, 0] for k in names}
            for vd in sorted(p for p in layout.image_root.iterdir() if p.is_dir()):
                scene, view = vd.name.rsplit("_", 1)
                gt = load_scene_tracks(layout, scene, "person")[view]
                # visibility of each GT box (the generator's meta; evaluation only)
                meta = pq.read_table(layout.meta_dir(scene) / "masks" / f"{view}.parquet",
                                     columns=["frame", "id", "visible_fraction"]).to_pydict()
                vis = {(int(f), int(i)): v for f, i, v in zip(
                    meta["frame"], meta["id"], meta["visible_fraction"], strict=True)}
                moved = {}
                for gid in np.unique(gt[:, 1]):
                    rows = gt[gt[:, 1] == gid]
                    feet = rows[:, 2:4] + rows[:, 4:6] * [0.5, 1.0]
                    moved[gid] = float(np.ptp(feet, axis=0).max()) > 0.5 * rows[:, 5].mean()
                st = VideoState(VideoFrames(scene, view, vd), learned_cfg)
                for i in range(len(st.video)):
                    t0 = time.perf_counter()
                    persons = st.person_boxes(i)
                    net_s += time.perf_counter() - t0
                    net_frames += 1
                    g = gt[gt[:, 0] == st.video.frame_numbers[i]]
                    dets = {
                        "matched_filter": detect_frame(st.fg, i, st.size, blob_cfg),
                        "learned": detect_frame(st.fg, i, st.size, learned_cfg, persons)}
                    for k, ds in dets.items():
                        boxes = np.array([d.box for d in ds if d.category == "person"],
                                         float).reshape(-1, 4)
                        hit = np.zeros(len(g), bool)
                        hit[_match(g[:, 2:6], boxes)] = True
                        for c in (counts[k]["all"], seed_counts[k]):
                            c[0] += int(hit.sum())
                            c[1] += len(g)
                            c[2] += len(boxes)
                        for j, row in enumerate(g):
                            key = (int(row[0]), int(row[1]))
                            if vis.get(key, 1.0) < 0.8:
                                counts[k]["partly_hidden"][0] += int(hit[j])
                                counts[k]["partly_hidden"][1] += 1
                            if not moved[row[1]]:
                                counts[k]["still"][0] += int(hit[j])
                                counts[k]["still"][1] += 1
            per_seed.append({"seed": seed, **{k: _f1(*seed_counts[k]) for k in names}})
            print(json.dumps(per_seed[-1]), flush=True)
    result = {
        "benchmark": "person_detector", "seeds": args.seeds, "weights": args.weights,
        "threshold": learned_cfg.person_det_threshold, "per_seed": per_seed,
        "all": {k: _f1(*counts[k]["all"]) for k in names},
        "recall_partly_hidden (visible < 0.8)": {
            k: round(counts[k]["partly_hidden"][0] / max(counts[k]["partly_hidden"][1], 1), 4)
            for k in names},
        "recall_still_people": {
            k: round(counts[k]["still"][0] / max(counts[k]["still"][1], 1), 4) for k in names},
        "gt_boxes": {"all": counts["learned"]["all"][1],
                     "partly_hidden": counts["learned"]["partly_hidden"][1],
                     "still": counts["learned"]["still"][1]},
        "detector_ms_per_frame": round(1000 * net_s / max(net_frames, 1), 2),
        "threads": args.threads,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
