"""Stage 1, step 1: concept tracking + ReID per (scene, view) video, on a Ray Data actor pool.

Each unit (scene, view, category) is tracked by the concept tracker; every tracklet frame
is cropped and embedded by the ReID model; the tracklet embedding is the mean of its frame
embeddings (Eq. 1). A unit's result is one Parquet file written atomically, so a re-run
skips finished units and a worker killed mid-unit leaves nothing behind (the unit is
simply redone).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from raysys.config import from_dict
from raysys.io import storage
from raysys.io.crtrack import list_image_views
from raysys.io.dataset import DatasetLayout
from raysys.io.video import VideoFrames
from raysys.labeling.config import LabelConfig
from raysys.types import Tracklet

__all__ = ["plan_units", "unit_path", "process_unit", "TrackEmbedUDF", "build_models",
           "crop", "read_unit"]


def plan_units(layout: DatasetLayout) -> list[dict]:
    """The (scene, view, category) units of a split, from frames and category labels only."""
    units = []
    for scene, views in list_image_views(layout.image_root).items():
        cat_file = layout.categories_file(scene)
        if not cat_file.is_file():
            raise FileNotFoundError(
                f"category labels missing: {cat_file}; Stage 1 needs each scene's category "
                'labels as {"categories": ["person", ...]}')
        cats = json.loads(cat_file.read_text())["categories"]
        for view in views:
            for cat in cats:
                units.append({"scene": scene, "view": view, "category": cat,
                              "view_dir": str(layout.view_dir(scene, view))})
    return units


def unit_path(out: Path, unit: dict) -> Path:
    name = f"{unit['scene']}__{unit['view']}__{unit['category']}.parquet"
    return storage.path(out) / "units" / name


def build_models(cfg: LabelConfig):
    """(concept tracker, ReID model) from the config's registries."""
    from raysys.backends import REID_BACKENDS
    from raysys.backends.concept_tracker import TRACKER_BACKENDS

    tracker = TRACKER_BACKENDS.build(cfg.tracker, device=cfg.device, **cfg.tracker_options)
    reid = REID_BACKENDS.build(cfg.reid, device=cfg.device, **cfg.reid_options)
    return tracker, reid


def crop(frame: np.ndarray, box: np.ndarray, mask: np.ndarray | None = None):
    """Crop ``frame`` (and a full-frame mask) to an xywh box clipped to the image."""
    h, w = frame.shape[:2]
    x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
    x1 = int(min(w, np.ceil(box[0] + box[2])))
    y1 = int(min(h, np.ceil(box[1] + box[3])))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    c = frame[y0:y1, x0:x1]
    return c, (mask[y0:y1, x0:x1] if mask is not None else None)


def embed_tracklets(video: VideoFrames, tracklets: list[Tracklet], reid, batch: int):
    """Per-frame embeddings of every tracklet, (len(t), d) each; frames read once."""
    by_frame: dict[int, list[tuple[int, int]]] = {}
    for ti, t in enumerate(tracklets):
        for k, f in enumerate(t.frames.tolist()):
            by_frame.setdefault(f, []).append((ti, k))
    out = [np.zeros((len(t), reid.dim), np.float32) for t in tracklets]
    crops, masks, where = [], [], []

    def flush():
        if crops:
            e = reid.embed(crops, masks)
            for (ti, k), row in zip(where, e, strict=True):
                out[ti][k] = row
            crops.clear()
            masks.clear()
            where.clear()

    for f in sorted(by_frame):
        img = video[video.index_of(f)]
        for ti, k in by_frame[f]:
            t = tracklets[ti]
            m = t.masks[k].decode() if t.masks else None
            c, cm = crop(img, t.boxes[k], m)
            crops.append(c)
            masks.append(cm if cm is not None and cm.any() else None)
            where.append((ti, k))
        if len(crops) >= batch:
            flush()
    flush()
    return out


def process_unit(unit: dict, tracker, reid, cfg: LabelConfig, out: Path) -> dict:
    """Track + embed one unit and write its Parquet file (atomically)."""
    import pyarrow as pa

    from raysys.io.tables import tracklets_to_table, write_table

    t0 = time.perf_counter()
    video = VideoFrames(unit["scene"], unit["view"], unit["view_dir"])
    tracklets = tracker.track(video, unit["category"])
    t1 = time.perf_counter()
    embs = embed_tracklets(video, tracklets, reid, cfg.reid_batch)
    t2 = time.perf_counter()
    table = tracklets_to_table(tracklets)
    flat = np.concatenate(embs) if embs else np.zeros((0, reid.dim), np.float32)
    table = table.append_column(
        "embedding", pa.array(list(flat.astype(np.float32)), type=pa.list_(pa.float32())))
    write_table(table, unit_path(out, unit))
    return {"unit": f"{unit['scene']}/{unit['view']}/{unit['category']}",
            "frames": len(video), "tracklets": len(tracklets),
            "track_s": t1 - t0, "embed_s": t2 - t1}


def read_unit(path: Path) -> tuple[list[Tracklet], list[np.ndarray]]:
    """Tracklets of a unit file and their (len, d) frame embeddings."""
    from raysys.io.tables import read_table, table_to_tracklets

    table = read_table(path)
    df = table.to_pandas()
    tracklets = table_to_tracklets(table)
    embs = []
    for t in tracklets:
        g = df[(df["view"] == t.view) & (df["local_id"] == t.local_id)].sort_values("frame")
        embs.append(np.stack(g["embedding"].to_numpy()).astype(np.float32)
                    if len(g) else np.zeros((0, 1), np.float32))
    return tracklets, embs


class TrackEmbedUDF:
    """Ray Data class UDF: models load once per actor; one row = one unit.

    Args:
        cfg_dict: :class:`LabelConfig` as a dict (picklable, versioned with the output).
        out: the labeling output folder.
        loader: builds (tracker, reid) from a config; injectable for tests.
    """

    def __init__(self, cfg_dict: dict, out: str,
                 loader: Callable[[LabelConfig], tuple] | None = None):
        self.cfg = from_dict(LabelConfig, cfg_dict)
        self.out = storage.path(out)
        self.tracker, self.reid = (loader or build_models)(self.cfg)

    def __call__(self, batch: dict) -> dict:
        stats: dict[str, list] = {"unit": [], "frames": [], "tracklets": [], "track_s": [],
                                  "embed_s": []}
        for i in range(len(batch["scene"])):
            unit = {k: str(batch[k][i]) for k in ("scene", "view", "category", "view_dir")}
            if unit_path(self.out, unit).exists():  # a task re-run (its node was lost)
                s = {"unit": f"{unit['scene']}/{unit['view']}/{unit['category']}",
                     "frames": 0, "tracklets": 0, "track_s": 0.0, "embed_s": 0.0}
            else:
                s = process_unit(unit, self.tracker, self.reid, self.cfg, self.out)
            for k in stats:
                stats[k].append(s[k])
        return {k: np.array(v) for k, v in stats.items()}
