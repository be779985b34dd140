"""Self-training probe: does a CNN detector trained on Stage 1's pseudo boxes beat them?

Stage 1's identity CVR-IDF1 is held below 75 by the per-camera boxes (``quality.json``'s
``ceiling``). A common remedy in weakly supervised detection is self-training: fit a
detector to the pseudo boxes and let it generalise past the teacher's misses. This script
measures whether that works here. It generates one seed of the `raysys synth` defaults
(In-domain test split), labels it with the default backends, and trains a small
CenterNet-style CNN (stride 8, RGB + the classical backend's foreground mask at half
resolution) on one stage's *person* pseudo boxes (no GT: foreground that no pseudo box
explains is ignored, not taken as background). Then, against the GT (evaluation only):

* box recall / precision / F1 at IoU 0.5 of the stage's pseudo boxes and of the CNN's
  boxes at several score thresholds, on the same frames;
* identity CVR-IDF1 of the last stage before and after "snapping" each pseudo box to the
  CNN box that overlaps it most (IoU >= 0.3): whether the CNN localises better.

Prints JSON (``--json`` also writes it):

    .venv/bin/python benchmarks/diagnostics/self_training.py [--seed 0] [--steps 800] \
        [--stage reprompt] [--data DATA --labels LABELS]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from raysys.commands.options import write_json


def _inputs(layout, labels: Path, stage: str, with_gt: bool):
    """Per frame: (H/2, W/2, 4) RGB + foreground, the stage's person boxes, GT boxes."""
    import numpy as np

    from raysys.backends.classical.config import ClassicalTrackerConfig
    from raysys.backends.classical.foreground import Foreground
    from raysys.backends.classical.person_net import net_input
    from raysys.io.gt import load_scene_tracks
    from raysys.io.video import VideoFrames
    from raysys.labeling.scene_stage import read_stage, stage_path

    out, cfg = [], ClassicalTrackerConfig()
    for scene in sorted(p.name for p in (labels / "scenes").iterdir() if p.is_dir()):
        rows = [t for _, t in read_stage(stage_path(labels, scene, stage))
                if t.category == "person"]
        gt = load_scene_tracks(layout, scene, "person") if with_gt else {}
        for view_dir in sorted(layout.image_root.glob(f"{scene}_View*")):
            view = view_dir.name[len(scene) + 1:]
            vid = VideoFrames(scene, view, view_dir)
            fg = Foreground(vid, cfg)
            boxes: dict[int, list] = {}
            for t in (t for t in rows if t.view == view):
                for f, b in zip(t.frames.tolist(), t.boxes, strict=True):
                    boxes.setdefault(f, []).append(b)
            for i in range(len(vid)):
                f = int(vid.frame_numbers[i])
                x = net_input(np.asarray(vid[i]), fg.mask(i))
                g = gt[view][gt[view][:, 0] == f][:, 2:6] if with_gt else None
                out.append({"scene": scene, "view": view, "frame": f, "x": x,
                            "boxes": np.array(boxes.get(f, []), float).reshape(-1, 4),
                            "gt": g})
    return out


def _train(frames, steps: int, seed: int):
    from raysys.backends.classical.person_net import train_person_net

    return train_person_net([f["x"] for f in frames], [f["boxes"] for f in frames], steps,
                            seed=seed, progress=False)


def _detect(net, frames, thresholds):
    """{threshold: [per-frame (n, 4) xywh boxes in image pixels]}."""
    import numpy as np
    import torch

    from raysys.backends.classical.person_net import decode

    out: dict = {t: [] for t in thresholds}
    with torch.no_grad():
        for k in range(0, len(frames), 16):
            x = torch.tensor(np.stack([f["x"] for f in frames[k:k + 16]])).permute(0, 3, 1, 2)
            heat, reg = net(x)
            for t in thresholds:
                out[t] += [b for b, _ in decode(heat, reg, t)]
    return out


def _box_scores(frames, preds) -> dict:
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from raysys.eval.pairs import iou_xywh

    tp = n_gt = n_pred = 0
    for f, p in zip(frames, preds, strict=True):
        g = f["gt"]
        n_gt, n_pred = n_gt + len(g), n_pred + len(p)
        if len(g) and len(p):
            m = np.array([iou_xywh(g, np.repeat(b[None], len(g), 0)) for b in p]).T
            r, c = linear_sum_assignment(-m)
            tp += int((m[r, c] >= 0.5).sum())
    return {"recall": round(tp / max(n_gt, 1), 4), "precision": round(tp / max(n_pred, 1), 4),
            "F1": round(2 * tp / max(n_gt + n_pred, 1), 4)}


def _snap_idf1(layout, labels: Path, stage: str, frames, preds, min_iou: float = 0.3):
    """Identity CVR-IDF1 of ``stage`` as labelled and with boxes snapped to CNN boxes."""
    import numpy as np

    from raysys.eval import evaluate_expression
    from raysys.eval.pairs import iou_xywh
    from raysys.io.gt import load_scene_tracks
    from raysys.labeling.quality import pred_rows
    from raysys.labeling.scene_stage import read_stage, stage_path

    cnn = {(f["scene"], f["view"], f["frame"]): p for f, p in zip(frames, preds, strict=True)}
    res = {"as_labelled": [], "snapped": []}
    snapped = total = 0
    for scene in sorted({f["scene"] for f in frames}):
        rows = read_stage(stage_path(labels, scene, stage))
        gt = load_scene_tracks(layout, scene, "person")
        moved = []
        for g, t in rows:
            b = t.boxes.copy()
            if t.category == "person":
                for k, f in enumerate(t.frames.tolist()):
                    c = cnn.get((scene, t.view, f), np.zeros((0, 4)))
                    total += 1
                    if len(c):
                        m = iou_xywh(c, np.repeat(b[k][None], len(c), 0))
                        if m.max() >= min_iou:
                            b[k] = c[int(np.argmax(m))]
                            snapped += 1
            moved.append((g, dataclasses.replace(t, boxes=b)))
        for key, rr in (("as_labelled", rows), ("snapped", moved)):
            r = evaluate_expression(gt, pred_rows(rr, list(gt), category="person"))
            res[key].append(r.cvr_idf1)
    return {k: round(float(np.mean(v)), 2) for k, v in res.items()} | {
        "boxes_snapped": snapped, "boxes": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--stage", default="reprompt", choices=["tracklets", "association",
                                                            "reprompt"])
    ap.add_argument("--data", type=Path, default=None, help="existing benchmark (In-domain test)")
    ap.add_argument("--labels", type=Path, default=None, help="existing Stage 1 output of it")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    if (args.data is None) != (args.labels is None):
        ap.error("give both --data and --labels, or neither (then both are made here)")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import torch

    from raysys.io.dataset import DatasetLayout

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data, labels = args.data, args.labels
        t0 = time.perf_counter()
        if data is None:
            import ray

            from raysys.labeling.config import LabelConfig
            from raysys.labeling.pipeline import run_labeling
            from raysys.synth import SynthConfig, generate

            data, labels = Path(tmp) / "data", Path(tmp) / "labels"
            generate(SynthConfig(seed=args.seed, splits=("test",), domains=("In-domain",)),
                     data)
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                     log_to_driver=False)
            try:
                run_labeling(DatasetLayout(data, "In-domain", "test"), labels, LabelConfig(),
                             progress=False)
            finally:
                ray.shutdown()
        layout = DatasetLayout(data, "In-domain", "test")
        label_s = time.perf_counter() - t0
        frames = _inputs(layout, labels, args.stage, with_gt=True)
        train = [{k: v for k, v in f.items() if k != "gt"} for f in frames]  # no GT
        t1 = time.perf_counter()
        net, losses = _train(train, args.steps, args.seed)
        train_s = time.perf_counter() - t1
        thresholds = (0.2, 0.3, 0.4, 0.5)
        preds = _detect(net, frames, thresholds)
        tracklets = _inputs(layout, labels, "tracklets", with_gt=True)
        result = {
            "seed": args.seed, "stage_trained_on": args.stage, "steps": args.steps,
            "frames": len(frames), "label_s": round(label_s, 1), "train_s": round(train_s, 1),
            "loss_first_last": [round(losses[0], 3), round(sum(losses[-50:]) / 50, 3)],
            "boxes": {
                "tracklets (pseudo)": _box_scores(tracklets, [f["boxes"] for f in tracklets]),
                f"{args.stage} (pseudo, the teacher)": _box_scores(
                    frames, [f["boxes"] for f in frames]),
                **{f"cnn@{t}": _box_scores(frames, preds[t]) for t in thresholds}},
            "identity_idf1_last_stage": _snap_idf1(layout, labels, "reprompt", frames,
                                                   preds[0.3]),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
