"""How hard a generated dataset is: occlusion, absence, expression generality, and how far
a plain colour descriptor gets at cross-view identity matching.

The descriptor is the classical baseline on purpose: HSV (or RGB) histograms over
horizontal stripes of the GT box crop, averaged over a person's frames in one view. If it
matched people across views nearly perfectly, the benchmark would not need the
cross-view machinery it is meant to exercise.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from raysys.io.crtrack import list_frames
from raysys.io.dataset import DatasetLayout
from raysys.io.frames import FrameError

__all__ = ["stripe_histogram", "view_descriptors", "cross_view_rank1", "same_view_rank1",
           "difficulty_stats"]


def stripe_histogram(crop_rgb: np.ndarray, stripes: int = 6, space: str = "hsv",
                     bins: tuple[int, int, int] = (8, 4, 4)) -> np.ndarray:
    """Concatenated per-stripe colour histograms, Hellinger-mapped and L2-normalised.

    Args:
        crop_rgb: (h, w, 3) uint8 RGB crop.
        stripes: number of horizontal stripes.
        space: "hsv" or "rgb".
        bins: bins per channel (joint histogram per stripe).

    Returns:
        (stripes * prod(bins),) float32 unit vector.
    """
    img = cv2.resize(crop_rgb, (32, 96), interpolation=cv2.INTER_AREA)
    if space == "hsv":
        img = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        ranges = [0, 180, 0, 256, 0, 256]
    elif space == "rgb":
        ranges = [0, 256, 0, 256, 0, 256]
    else:
        raise ValueError(f"space must be 'hsv' or 'rgb', got {space!r}")
    out = []
    for s in np.array_split(np.arange(img.shape[0]), stripes):
        h = cv2.calcHist([np.ascontiguousarray(img[s])], [0, 1, 2], None, list(bins),
                         ranges).ravel()
        out.append(np.sqrt(h / max(h.sum(), 1.0)))
    v = np.concatenate(out).astype(np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def view_descriptors(lay: DatasetLayout, scene: str, every: int = 2, space: str = "hsv",
                     category: str = "person", min_height: int = 12,
                     frames: tuple[int, int] | None = None
                     ) -> dict[str, dict[int, np.ndarray]]:
    """Mean stripe descriptor per (view, global id) over GT box crops of ``category``
    (only frames in ``[frames[0], frames[1]]`` when given)."""
    lo, hi = frames or (1, 1 << 30)
    out: dict[str, dict[int, np.ndarray]] = {}
    for f in sorted((lay.meta_dir(scene) / "masks").glob("View*.parquet")):
        view = f.stem
        t = pq.read_table(f, columns=["frame", "id", "category", "left", "top", "width",
                                      "height"]).to_pydict()
        frames = dict(list_frames(lay.view_dir(scene, view)))
        acc: dict[int, list[np.ndarray]] = {}
        cache: dict[int, np.ndarray] = {}
        for i in range(len(t["frame"])):
            fr = t["frame"][i]
            if (t["category"][i] != category or (fr - 1) % every or t["height"][i] < min_height
                    or not lo <= fr <= hi):
                continue
            if fr not in cache:
                cache.clear()
                img = cv2.imread(str(frames[fr]))
                if img is None:
                    raise FrameError(frames[fr], "cannot be decoded (empty, truncated or not "
                                     "an image)", scene, view, fr)
                cache[fr] = img[..., ::-1]
            x, y, w, h = (t[k][i] for k in ("left", "top", "width", "height"))
            crop = cache[fr][y:y + h, x:x + w]
            acc.setdefault(t["id"][i], []).append(stripe_histogram(crop, space=space))
        out[view] = {g: np.mean(v, 0) for g, v in acc.items()}
    return out


def cross_view_rank1(desc: dict[str, dict[int, np.ndarray]]) -> tuple[float, dict[str, float]]:
    """Rank-1 of matching each id seen in view A among all ids of view B (cosine
    similarity), for every ordered pair of views; returns (mean over pairs, per pair)."""
    per: dict[str, float] = {}
    for a, b in itertools.permutations(sorted(desc), 2):
        query = sorted(set(desc[a]) & set(desc[b]))
        gallery = sorted(desc[b])
        if not query or len(gallery) < 2:
            continue
        G = np.stack([desc[b][g] for g in gallery])
        G /= np.linalg.norm(G, axis=1, keepdims=True)
        hits = 0
        for q in query:
            v = desc[a][q] / np.linalg.norm(desc[a][q])
            hits += gallery[int(np.argmax(G @ v))] == q
        per[f"{a}->{b}"] = hits / len(query)
    return (float(np.mean(list(per.values()))) if per else float("nan")), per


def same_view_rank1(lay: DatasetLayout, scene: str, n_frames: int, every: int = 2,
                    space: str = "hsv") -> float:
    """Sanity check that people are distinguishable: rank-1 of matching each person's
    first-half descriptor to the second-half ones *within* each view (mean over views)."""
    half = n_frames // 2
    a = view_descriptors(lay, scene, every, space, frames=(1, half))
    b = view_descriptors(lay, scene, every, space, frames=(half + 1, n_frames))
    scores = [cross_view_rank1({"A": a[v], "B": b[v]})[1].get("A->B") for v in a]
    scores = [s for s in scores if s is not None]
    return float(np.mean(scores)) if scores else float("nan")


def _absent_elsewhere(lay: DatasetLayout, scene: str, people: set[int]) -> float:
    """Of the (person, frame) pairs in some view's GT, the fraction missing from another."""
    seen: dict[tuple[int, int], int] = {}
    views = sorted((lay.meta_dir(scene) / "masks").glob("View*.parquet"))
    for f in views:
        t = pq.read_table(f, columns=["frame", "id"]).to_pydict()
        for fr, g in zip(t["frame"], t["id"], strict=True):
            if g in people:
                seen[(fr, g)] = seen.get((fr, g), 0) + 1
    return float(np.mean([n < len(views) for n in seen.values()])) if seen else 0.0


def difficulty_stats(root: str | os.PathLike, domain: str = "In-domain", split: str = "test",
                     every: int = 2) -> dict:
    """Difficulty statistics of one (domain, split) of a generated dataset.

    Returns:
        dict with, over person boxes: ``hidden_fraction`` (figure reaches the image but is
        below the visibility threshold, so absent from GT), ``partial_fraction`` (GT boxes
        with < 90 % of the silhouette visible), ``absent_in_other_view_fraction``;
        ``mean_ids_per_expression``, ``specific_expression_fraction``; and
        ``rank1_hsv`` / ``rank1_rgb``: cross-view rank-1 of stripe histograms (mean over
        scenes of the mean over ordered view pairs); ``rank1_hsv_same_view``: the same
        descriptor matching first half to second half of the video within one view.
    """
    lay = DatasetLayout(Path(root), domain, split)
    metas = sorted(p for p in (lay.domain_dir / "meta" / split).iterdir() if p.is_dir())
    boxes = hidden = partial = 0
    ids_per_expr: list[int] = []
    absent, r_hsv, r_rgb, r_same = [], [], [], []
    for m in metas:
        s = json.loads((m / "done.json").read_text())["summary"]
        boxes += s["person_boxes"]
        hidden += s["person_hidden"]
        partial += s["person_partial"]
        ids_per_expr += s["ids_per_expression"]
        objs = json.loads((m / "objects.json").read_text())["objects"]
        people = {o["id"] for o in objs if o["category"] == "person"}
        absent.append(_absent_elsewhere(lay, m.name, people))
        r_hsv.append(cross_view_rank1(view_descriptors(lay, m.name, every, "hsv"))[0])
        r_rgb.append(cross_view_rank1(view_descriptors(lay, m.name, every, "rgb"))[0])
        r_same.append(same_view_rank1(lay, m.name, s["frames"], every, "hsv"))
    n = max(boxes + hidden, 1)
    return {
        "domain": domain, "split": split, "scenes": len(metas),
        "person_boxes": boxes,
        "hidden_fraction": hidden / n,
        "partial_fraction": partial / max(boxes, 1),
        "absent_in_other_view_fraction": float(np.mean(absent)) if absent else 0.0,
        "expressions": len(ids_per_expr),
        "mean_ids_per_expression": float(np.mean(ids_per_expr)) if ids_per_expr else 0.0,
        "specific_expression_fraction":
            float(np.mean([k == 1 for k in ids_per_expr])) if ids_per_expr else 0.0,
        "rank1_hsv": float(np.nanmean(r_hsv)) if r_hsv else float("nan"),
        "rank1_rgb": float(np.nanmean(r_rgb)) if r_rgb else float("nan"),
        "rank1_hsv_same_view": float(np.nanmean(r_same)) if r_same else float("nan"),
    }
