"""Parquet tables of pseudo labels: tracklets, trajectories, expressions.

Schemas (one row each):
* tracklets:    scene, view, local_id, category, frame, left, top, width, height, score,
                mask (MaskRLE string or null)           - one row per (tracklet, frame)
* trajectories: scene, global_id, category, view, local_id  - tracklet -> global id
* expressions:  scene, expression_id, text, global_ids (list<int64>)

Files are written atomically (temporary file + rename).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from raysys.types import CrossViewTrajectory, Expression, MaskRLE, Tracklet

__all__ = [
    "tracklets_to_table",
    "table_to_tracklets",
    "trajectories_to_table",
    "expressions_to_table",
    "table_to_expressions",
    "write_table",
    "read_table",
]

TRACKLET_COLUMNS = ["scene", "view", "local_id", "category", "frame", "left", "top", "width",
                    "height", "score", "mask"]


def _pa():
    import pyarrow as pa

    return pa


def tracklets_to_table(tracklets: Iterable[Tracklet]):
    """Flatten tracklets to a pyarrow Table (one row per tracklet frame)."""
    pa = _pa()
    cols: dict[str, list] = {c: [] for c in TRACKLET_COLUMNS}
    for t in tracklets:
        n = len(t)
        cols["scene"] += [t.scene] * n
        cols["view"] += [t.view] * n
        cols["local_id"] += [t.local_id] * n
        cols["category"] += [t.category] * n
        cols["frame"] += t.frames.tolist()
        for k, c in enumerate(("left", "top", "width", "height")):
            cols[c] += t.boxes[:, k].tolist()
        cols["score"] += t.scores.tolist()
        cols["mask"] += [m.to_string() for m in t.masks] if t.masks else [None] * n
    schema = pa.schema([
        ("scene", pa.string()), ("view", pa.string()), ("local_id", pa.int64()),
        ("category", pa.string()), ("frame", pa.int64()), ("left", pa.float64()),
        ("top", pa.float64()), ("width", pa.float64()), ("height", pa.float64()),
        ("score", pa.float64()), ("mask", pa.string()),
    ])
    return pa.table(cols, schema=schema)


def table_to_tracklets(table) -> list[Tracklet]:
    """Inverse of :func:`tracklets_to_table`."""
    df = table.to_pandas() if hasattr(table, "to_pandas") else table
    missing = set(TRACKLET_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"tracklet table lacks columns {sorted(missing)}")
    out = []
    for (scene, view, lid), g in df.sort_values("frame").groupby(
            ["scene", "view", "local_id"], sort=True):
        masks = None
        if g["mask"].notna().all():
            masks = tuple(MaskRLE.from_string(s) for s in g["mask"])
        out.append(Tracklet(
            scene=str(scene), view=str(view), local_id=int(lid),
            category=str(g["category"].iloc[0]), frames=g["frame"].to_numpy(),
            boxes=g[["left", "top", "width", "height"]].to_numpy(dtype=np.float64),
            scores=g["score"].to_numpy(dtype=np.float64), masks=masks,
        ))
    return out


def trajectories_to_table(trajs: Iterable[CrossViewTrajectory]):
    pa = _pa()
    rows: dict[str, list] = {"scene": [], "global_id": [], "category": [], "view": [],
                             "local_id": []}
    for tr in trajs:
        for view, tls in tr.tracklets.items():
            for t in tls:
                rows["scene"].append(tr.scene)
                rows["global_id"].append(tr.global_id)
                rows["category"].append(tr.category)
                rows["view"].append(view)
                rows["local_id"].append(t.local_id)
    return pa.table(rows, schema=pa.schema([
        ("scene", pa.string()), ("global_id", pa.int64()), ("category", pa.string()),
        ("view", pa.string()), ("local_id", pa.int64())]))


def expressions_to_table(exprs: Iterable[Expression]):
    pa = _pa()
    exprs = list(exprs)
    return pa.table({
        "scene": [e.scene for e in exprs],
        "expression_id": list(range(len(exprs))),
        "text": [e.text for e in exprs],
        "global_ids": [list(e.global_ids) for e in exprs],
    }, schema=pa.schema([("scene", pa.string()), ("expression_id", pa.int64()),
                         ("text", pa.string()), ("global_ids", pa.list_(pa.int64()))]))


def table_to_expressions(table) -> list[Expression]:
    d = table.to_pydict()
    return [Expression(s, t, tuple(g)) for s, t, g in
            zip(d["scene"], d["text"], d["global_ids"], strict=True)]


def write_table(table, path: str | os.PathLike) -> None:
    """Write a pyarrow Table to Parquet atomically (:func:`raysys.io.storage.write_bytes`:
    a temporary file and a rename with the mode of the text outputs locally, one PUT to a
    storage URI)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raysys.io import storage

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    storage.write_bytes(path, sink.getvalue().to_pybytes())


def read_table(path: str | os.PathLike):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raysys.io import storage

    path = storage.path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Parquet table not found: {path}")
    if isinstance(path, storage.RemotePath):
        return pq.read_table(pa.BufferReader(path.read_bytes()))
    return pq.read_table(path)
