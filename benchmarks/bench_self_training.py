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

    .venv/bin/python benchmarks/bench_self_training.py [--seed 0] [--steps 800] \
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

SCALE, STRIDE = 2, 4  # input at 1/SCALE resolution; output grid STRIDE on that input


def _inputs(layout, labels: Path, stage: str, with_gt: bool):
    """Per frame: (H/2, W/2, 4) RGB + foreground, the stage's person boxes, GT boxes."""
    import cv2
    import numpy as np

    from raysys.io.gt import load_scene_tracks
    from raysys.io.video import VideoFrames
    from raysys.labeling.backends.classical.config import ClassicalTrackerConfig
    from raysys.labeling.backends.classical.foreground import Foreground
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
                img = np.asarray(vid[i])
                size = (img.shape[1] // SCALE, img.shape[0] // SCALE)
                x = np.concatenate(
                    [cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                     .astype(np.float32) / 255.0,
                     cv2.resize(fg.mask(i).astype(np.float32), size,
                                interpolation=cv2.INTER_AREA)[..., None]], axis=2)
                g = gt[view][gt[view][:, 0] == f][:, 2:6] if with_gt else None
                out.append({"scene": scene, "view": view, "frame": f, "x": x,
                            "boxes": np.array(boxes.get(f, []), float).reshape(-1, 4),
                            "gt": g})
    return out


def _targets(x, boxes):
    """CenterNet targets on the output grid: heat, loss weight, log size, offset, centres."""
    import numpy as np

    h, w = x.shape[0] // STRIDE, x.shape[1] // STRIDE
    heat, wt = np.zeros((h, w), np.float32), np.ones((h, w), np.float32)
    size, off = np.zeros((2, h, w), np.float32), np.zeros((2, h, w), np.float32)
    centre = np.zeros((h, w), np.float32)
    fg = x[: h * STRIDE, : w * STRIDE, 3].reshape(h, STRIDE, w, STRIDE).mean((1, 3)) > 0.2
    cover = np.zeros((h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w]
    for b in boxes / (SCALE * STRIDE):
        cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
        ix, iy = int(cx), int(cy)
        if not (0 <= ix < w and 0 <= iy < h):
            continue
        sx, sy = max(b[2] / 6, 0.5), max(b[3] / 6, 0.5)
        heat = np.maximum(heat, np.exp(-((xx - cx + 0.5) ** 2 / (2 * sx * sx)
                                         + (yy - cy + 0.5) ** 2 / (2 * sy * sy))))
        heat[iy, ix] = 1.0
        size[:, iy, ix] = np.log(np.maximum([b[2], b[3]], 0.25))
        off[:, iy, ix] = [cx - ix, cy - iy]
        centre[iy, ix] = 1.0
        x0, y0 = max(int(b[0]) - 1, 0), max(int(b[1]) - 1, 0)
        cover[y0:int(b[1] + b[3]) + 2, x0:int(b[0] + b[2]) + 2] = True
    wt[fg & ~cover] = 0.0  # foreground no pseudo box explains: unknown, not background
    return heat, wt, size, off, centre


def _net():
    from torch import nn

    def block(i, o, s=1, d=1):
        return nn.Sequential(nn.Conv2d(i, o, 3, s, d, dilation=d, bias=False),
                             nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(block(4, 32, 2), block(32, 32), block(32, 64, 2),
                                      block(64, 64), block(64, 64, d=2), block(64, 64, d=4),
                                      block(64, 64, d=8), block(64, 64))
            self.heat, self.reg = nn.Conv2d(64, 1, 1), nn.Conv2d(64, 4, 1)
            nn.init.constant_(self.heat.bias, -2.19)

        def forward(self, x):
            f = self.body(x)
            return self.heat(f), self.reg(f)

    return Net()


def _train(frames, steps: int, seed: int):
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tg = [_targets(f["x"], f["boxes"]) for f in frames]
    X = torch.tensor(np.stack([f["x"] for f in frames])).permute(0, 3, 1, 2)
    T = [torch.tensor(np.stack([t[k] for t in tg])) for k in range(5)]
    net = _net()
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
    batch, losses = 8, []
    for _ in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(X), batch))
        x = X[idx]
        heat, wt, size, off, centre = (t[idx] for t in T)
        if rng.random() < 0.5:  # horizontal flip
            x, heat, wt, size, centre = (a.flip(-1) for a in (x, heat, wt, size, centre))
            off = torch.stack([1 - off[:, 0].flip(-1), off[:, 1].flip(-1)], 1) * centre[:, None]
        gain = 0.8 + 0.4 * torch.as_tensor(rng.random((batch, 1, 1, 1)), dtype=x.dtype)
        x = torch.cat([x[:, :3] * gain, x[:, 3:]], 1)
        logit, reg = net(x)
        p = torch.sigmoid(logit[:, 0]).clamp(1e-4, 1 - 1e-4)
        pos = heat.eq(1).float()
        neg = (1 - pos) * wt
        focal = -(pos * (1 - p) ** 2 * torch.log(p)
                  + neg * (1 - heat) ** 4 * p ** 2 * torch.log(1 - p)).sum()
        l1 = (F.l1_loss(reg[:, :2], size, reduction="none")
              + F.l1_loss(reg[:, 2:], off, reduction="none")).sum(1)
        loss = focal / pos.sum().clamp(min=1) + (l1 * centre).sum() / centre.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return net.eval(), losses


def _detect(net, frames, thresholds):
    """{threshold: [per-frame (n, 4) xywh boxes in image pixels]}."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    peaks = []
    with torch.no_grad():
        for k in range(0, len(frames), 16):
            x = torch.tensor(np.stack([f["x"] for f in frames[k:k + 16]])).permute(0, 3, 1, 2)
            logit, reg = net(x)
            p = torch.sigmoid(logit)
            p = p * (F.max_pool2d(p, 3, 1, 1) == p)
            peaks += [(p[j, 0].numpy(), reg[j].numpy()) for j in range(len(x))]
    out = {}
    for thr in thresholds:
        per = []
        for pk, reg in peaks:
            ys, xs = np.nonzero(pk > thr)
            w, h = np.exp(reg[0, ys, xs]), np.exp(reg[1, ys, xs])
            cx, cy = xs + reg[2, ys, xs], ys + reg[3, ys, xs]
            per.append(np.column_stack([cx - w / 2, cy - h / 2, w, h]) * SCALE * STRIDE)
        out[thr] = per
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
    from raysys.labeling.quality import _pred_rows
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
            r = evaluate_expression(gt, _pred_rows(rr, list(gt), category="person"))
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
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
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
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
