"""Pre-training the embedded describer's attribute net on GT person crops of generated scenes.

Like the person detector's pre-training (:mod:`raysys.backends.classical.pretrain_detector`):
supervised pre-training of a foundation part on *other* data, generated scenes of its own
seeds (:data:`~raysys.backends.attribute_net.PRETRAIN_SEEDS`, disjoint from every benchmark
a report scores), every domain and split of them. Each person's crops (GT box, jittered as
a tracker's box would be, and GT mask) are labelled with the generator's attributes
(:func:`~raysys.backends.attribute_net.labels_of`). No identities, no expressions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["crop_box", "person_crops", "scene_dirs", "pretraining_crops",
           "pretrain_attribute_net", "head_accuracy"]


def _decode_rle(rle: str) -> np.ndarray:
    from raysys.types import MaskRLE

    size, counts = rle.split(":")
    h, w = map(int, size.split("x"))
    return MaskRLE(h, w, tuple(int(x) for x in counts.split())).decode()


def crop_box(frame: np.ndarray, box: np.ndarray, mask: np.ndarray | None = None):
    """Crop ``frame`` (and a full-frame mask) to an xywh box clipped to the image (as
    Stage 1 crops a tracked box)."""
    h, w = frame.shape[:2]
    x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
    x1, y1 = int(min(w, np.ceil(box[0] + box[2]))), int(min(h, np.ceil(box[1] + box[3])))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    return frame[y0:y1, x0:x1], (mask[y0:y1, x0:x1] if mask is not None else None)


def _jitter(box: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """A GT xywh box moved and scaled by up to 8% of its size (a tracker's box is rough)."""
    if rng is None:
        return box
    x, y, w, h = box
    dx, dy, sw, sh = rng.uniform(-0.08, 0.08, 4)
    return np.array([x + dx * w, y + dy * h, w * (1 + sw), h * (1 + sh)], float)


def person_crops(scene_dir: Path, image_root: Path, per_view: int = 8,
                 min_visible: float = 0.4, rng: np.random.Generator | None = None):
    """GT crops of every person of one generated scene: yields ``(person id, attributes,
    view, crop, mask, frame context)`` (:func:`~raysys.backends.attribute_net.frame_context`
    of the crop's frame), up to ``per_view`` frames per person and camera (evenly spaced, at
    least ``min_visible`` of the person visible); boxes jittered when ``rng`` is given."""
    import pyarrow.parquet as pq

    from raysys.backends.attribute_net import frame_context
    from raysys.io.video import VideoFrames

    objects = json.loads((scene_dir / "objects.json").read_text())["objects"]
    attrs = {o["id"]: o["attributes"] for o in objects if o["category"] == "person"}
    for mask_file in sorted((scene_dir / "masks").glob("View*.parquet")):
        view = mask_file.stem
        df = pq.read_table(mask_file).to_pandas()
        df = df[(df.category == "person") & (df.visible_fraction >= min_visible)]
        picked = []
        for _, rows in df.groupby("id"):
            idx = np.unique(np.linspace(0, len(rows) - 1, min(per_view, len(rows))).round())
            picked.append(rows.iloc[idx.astype(int)])
        if not picked:
            continue
        video = VideoFrames(scene_dir.name, view, image_root / f"{scene_dir.name}_{view}")
        for frame, rows in _concat(picked).groupby("frame"):
            img = video[video.index_of(int(frame))]
            ctx = frame_context(img)
            for r in rows.itertuples():
                box = _jitter(np.array([r.left, r.top, r.width, r.height], float), rng)
                c, m = crop_box(img, box, _decode_rle(r.rle))
                yield int(r.id), attrs[int(r.id)], view, c, m, ctx


def _concat(frames):
    import pandas as pd

    return pd.concat(frames)


def scene_dirs(data: Path, domain: str | None = None, split: str | None = None):
    """``(meta scene dir, image root)`` of every scene of every domain and split (or of
    one ``domain`` and/or ``split`` only)."""
    for dom in ("In-domain", "Cross-domain") if domain is None else (domain,):
        for spl in ("train", "test") if split is None else (split,):
            meta = Path(data) / dom / "meta" / spl
            if meta.is_dir():
                for sd in sorted(p for p in meta.iterdir() if p.is_dir()):
                    yield sd, Path(data) / dom / "images" / spl


def pretraining_crops(data: Path, per_view: int = 8, seed: int = 0, progress: bool = True
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(inputs (N, H, W, 4) uint8, labels (N, heads), frame contexts (N, CONTEXT_DIM))``
    of every person crop of a generated benchmark (all domains and splits)."""
    from tqdm.auto import tqdm

    from raysys.backends.attribute_net import labels_of, net_input

    scenes = list(scene_dirs(data))
    if not scenes:
        raise FileNotFoundError(f"no generated scenes under {data} (make them with "
                                f"`raysys synth --out {data}`)")
    rng = np.random.default_rng(seed)
    xs, ys, cs = [], [], []
    for sd, images in tqdm(scenes, desc="describer data", unit="scene", disable=not progress):
        for _, a, _, c, m, ctx in person_crops(sd, images, per_view, rng=rng):
            xs.append(net_input(c, m))
            ys.append(labels_of(a))
            cs.append(ctx)
    if not xs:
        raise ValueError(f"no person crops in the scenes under {data} (people at least 40% "
                         f"visible are needed)")
    return np.stack(xs), np.stack(ys), np.stack(cs)


def head_accuracy(net, inputs: np.ndarray, labels: np.ndarray, contexts: np.ndarray
                  ) -> dict[str, float]:
    """Per-crop accuracy of each head on labelled crops (rows with label -1 left out)."""
    from raysys.backends.attribute_net import HEADS, predict

    probs = predict(net, inputs, contexts)
    out = {}
    for j, k in enumerate(HEADS):
        ok = labels[:, j] >= 0
        if ok.any():
            out[k] = round(float((probs[k][ok].argmax(1) == labels[ok, j]).mean()), 4)
    return out


def _cached_crops(out: Path, data: list[Path], per_view: int, seed: int, progress: bool):
    """Crops of every benchmark, kept in ``out/crops-<seed>-<per_view>-<name>.npz`` so that
    a second training on the same data skips reading the videos."""
    xs, ys, cs = [], [], []
    for d in data:
        cache = out / f"crops-{seed}-{per_view}-{Path(d).resolve().name}.npz"
        x = None
        if cache.is_file():
            with np.load(cache) as z:
                if {"X", "Y", "C"} <= set(z.files):  # an older cache has no C: redone
                    x, y, c = z["X"], z["Y"], z["C"]
        if x is None:
            x, y, c = pretraining_crops(d, per_view, seed, progress)
            out.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.stem + ".tmp.npz")
            np.savez(tmp, X=x, Y=y, C=c)
            tmp.replace(cache)
        xs.append(x)
        ys.append(y)
        cs.append(c)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cs)


def pretrain_attribute_net(out: Path, data: list[Path], steps: int = 36000, seed: int = 0,
                           device: str = "cpu", per_view: int = 8, holdout: float = 0.1,
                           progress: bool = True) -> dict:
    """Train on ``data`` (generated benchmarks) and write ``out/attribute_net.pt``; returns
    its meta (data, crops, steps, loss, per-crop accuracy on ``holdout`` of the crops left
    out of training - crops, not people: a check that it learnt, not a benchmark -, device,
    seconds)."""
    from raysys.backends.attribute_net import save_attribute_net, train_attribute_net

    t0 = time.perf_counter()
    X, Y, C = _cached_crops(Path(out), data, per_view, seed, progress)
    perm = np.random.default_rng(seed).permutation(len(X))
    n_val = int(round(holdout * len(X)))
    val, tr = perm[:n_val], perm[n_val:]
    t1 = time.perf_counter()
    net, losses = train_attribute_net(X[tr], Y[tr], C[tr], steps, seed=seed, device=device,
                                      progress=progress)
    meta = {"data": [str(d) for d in data], "crops": int(len(tr)), "steps": steps,
            "seed": seed, "device": device, "per_view": per_view,
            "loss_first": round(losses[0], 4),
            "loss_last50": round(float(np.mean(losses[-50:])), 4),
            "crop_accuracy_holdout": head_accuracy(net, X[val], Y[val], C[val]) if n_val
            else {},
            "seconds_data": round(t1 - t0, 1),
            "seconds_train": round(time.perf_counter() - t1, 1)}
    save_attribute_net(net, Path(out) / "attribute_net.pt", meta)
    return meta
