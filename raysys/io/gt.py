"""Ground truth of a generated (or converted) dataset: all objects per view.

Reads ``meta/<split>/<Scene>/objects.json`` (global ids, categories, attributes) and
``meta/<split>/<Scene>/tracks/View<k>.txt`` (CRTrack GT rows of every object). For
evaluation and the fully supervised mode only: weakly supervised code never calls this.
"""

from __future__ import annotations

import json

import numpy as np

from raysys.io.crtrack import read_gt_file, view_sort_key
from raysys.io.dataset import DatasetLayout

__all__ = ["load_objects", "load_scene_tracks"]


def load_objects(layout: DatasetLayout, scene: str) -> list[dict]:
    """Objects of a scene: ``[{"id", "category", "attributes", ...}]``."""
    f = layout.meta_dir(scene) / "objects.json"
    if not f.is_file():
        raise FileNotFoundError(f"scene GT not found: {f} (generate data with `raysys synth`)")
    return json.loads(f.read_text())["objects"]


def load_scene_tracks(layout: DatasetLayout, scene: str,
                      category: str | None = None) -> dict[str, np.ndarray]:
    """GT rows (n, 6) frame, id, left, top, width, height per view, optionally one category."""
    d = layout.meta_dir(scene) / "tracks"
    if not d.is_dir():
        raise FileNotFoundError(f"scene GT tracks not found: {d}")
    keep = None
    if category is not None:
        keep = [o["id"] for o in load_objects(layout, scene) if o["category"] == category]
    out = {}
    for f in sorted(d.glob("View*.txt"), key=lambda p: view_sort_key(p.stem)):
        rows = read_gt_file(f)
        out[f.stem] = rows if keep is None else rows[np.isin(rows[:, 1], keep)]
    return out
