"""Where training clips come from: Stage 1's pseudo labels, or (explicitly) the GT.

Sources (same interface, :func:`open_source`):

* :class:`PseudoLabelSource` (``supervision="weak"``): ``tracklets.parquet`` joined with
  ``trajectories.parquet`` (global id per view tracklet) and ``expressions.parquet``; frames
  from the dataset's image folders. It reads nothing under ``gt/`` or ``meta/``; training
  runs it under :mod:`raysys.guard`, so a GT read raises.
* :class:`GroundTruthSource` (``supervision="full"``, the fully supervised comparison row
  only): all-object GT tracks (``meta/.../tracks``), GT expressions (``gt/``), GT masks
  (``meta/.../masks/View<k>.parquet``) when present.

"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from raysys.io import storage
from raysys.io.crtrack import list_frames, list_image_views
from raysys.io.dataset import DatasetLayout

__all__ = ["OBJECT_COLUMNS", "ClipSource", "PseudoLabelSource", "GroundTruthSource",
           "open_source"]

OBJECT_COLUMNS = ["view", "frame", "global_id", "category", "left", "top", "width", "height",
                  "mask"]


class ClipSource:
    """Frames of a dataset split + object rows + expressions; tables load once, lazily.

    Subclasses implement ``_load_expressions()`` -> list of ``{"scene", "expression_id",
    "text", "global_ids"}`` and ``_load_objects(scene)`` -> DataFrame with
    ``OBJECT_COLUMNS`` (boxes xywh in image pixels, ``mask`` a MaskRLE string or None).
    """

    supervision = ""

    def __init__(self, layout: DatasetLayout) -> None:
        self.layout = layout
        self._cache: dict = {}

    def __getstate__(self) -> dict:  # ship the paths, not the loaded tables
        return {"layout": self.layout, **self._extra_state(), "_cache": {}}

    def _extra_state(self) -> dict:
        return {}

    def expressions(self) -> list[dict]:
        if "expr" not in self._cache:
            self._cache["expr"] = self._load_expressions()
        return self._cache["expr"]

    def objects(self, scene: str):
        key = ("obj", scene)
        if key not in self._cache:
            df = self._load_objects(scene)
            self._cache[key] = df[OBJECT_COLUMNS].reset_index(drop=True)
        return self._cache[key]

    def views(self, scene: str) -> list[str]:
        if "views" not in self._cache:
            self._cache["views"] = list_image_views(self.layout.image_root)
        views = self._cache["views"].get(scene)
        if not views:
            raise FileNotFoundError(f"no frames of scene {scene!r} under "
                                    f"{self.layout.image_root} (<Scene>_View<k>/ folders)")
        return views

    def frame_paths(self, scene: str, view: str) -> dict[int, Path]:
        key = ("frames", scene, view)
        if key not in self._cache:
            self._cache[key] = dict(list_frames(self.layout.view_dir(scene, view)))
        return self._cache[key]

    def frame_numbers(self, scene: str) -> list[int]:
        """Frame numbers present in every view of the scene (synchronised), sorted."""
        common = None
        for v in self.views(scene):
            f = set(self.frame_paths(scene, v))
            common = f if common is None else common & f
        return sorted(common or ())

    def _load_expressions(self) -> list[dict]:
        raise NotImplementedError

    def _load_objects(self, scene: str):
        raise NotImplementedError


class PseudoLabelSource(ClipSource):
    """Stage 1 output (weak supervision): reads only ``labels`` and the frames."""

    supervision = "weak"

    def __init__(self, labels: str | os.PathLike, layout: DatasetLayout) -> None:
        super().__init__(layout)
        self.labels = storage.path(labels)

    def _extra_state(self) -> dict:
        return {"labels": self.labels}

    def _load_expressions(self) -> list[dict]:
        from raysys.io.tables import read_table

        d = read_table(self.labels / "expressions.parquet").to_pydict()
        return [{"scene": s, "expression_id": int(i), "text": t,
                 "global_ids": [int(g) for g in ids]}
                for s, i, t, ids in zip(d["scene"], d["expression_id"], d["text"],
                                        d["global_ids"], strict=True)]

    def _load_objects(self, scene: str):
        from raysys.io.tables import read_table

        key = ("tables",)
        if key not in self._cache:
            self._cache[key] = (read_table(self.labels / "tracklets.parquet").to_pandas(),
                                read_table(self.labels / "trajectories.parquet").to_pandas())
        tl, tr = self._cache[key]
        tl, tr = tl[tl["scene"] == scene], tr[tr["scene"] == scene]
        df = tl.drop(columns=["category"]).merge(
            tr[["view", "local_id", "global_id", "category"]], on=["view", "local_id"])
        # a trajectory may hold two tracklets of one view: keep the best-scored row per frame
        df = df.sort_values("score", ascending=False).drop_duplicates(
            ["view", "frame", "global_id"])
        return df.sort_values(["view", "frame", "global_id"])


class GroundTruthSource(ClipSource):
    """GT of the dataset: for the fully supervised comparison row only (reads gt/, meta/)."""

    supervision = "full"

    def _load_expressions(self) -> list[dict]:
        from raysys.io.crtrack import list_expressions, read_expression_gt

        out = []
        for i, e in enumerate(list_expressions(self.layout.gt_root)):
            rows = read_expression_gt(self.layout.gt_root, e.name)
            ids = sorted({int(g) for r in rows.values() for g in r[:, 1]})
            out.append({"scene": e.scene, "expression_id": i, "text": e.text, "global_ids": ids})
        return out

    def _load_objects(self, scene: str):
        import pandas as pd

        from raysys.io.gt import load_objects, load_scene_tracks
        from raysys.io.tables import read_table

        cats = {int(o["id"]): str(o["category"]) for o in load_objects(self.layout, scene)}
        parts = []
        for view, rows in load_scene_tracks(self.layout, scene).items():
            df = pd.DataFrame(rows[:, :6], columns=["frame", "global_id", "left", "top",
                                                    "width", "height"])
            df[["frame", "global_id"]] = df[["frame", "global_id"]].astype(np.int64)
            df["view"] = view
            df["category"] = df["global_id"].map(cats).fillna("unknown")
            f = self.layout.meta_dir(scene) / "masks" / f"{view}.parquet"
            if f.is_file():
                m = read_table(f).to_pandas()[["frame", "id", "rle"]]
                m = m.rename(columns={"id": "global_id", "rle": "mask"}).astype(
                    {"frame": np.int64, "global_id": np.int64})
                df = df.merge(m, on=["frame", "global_id"], how="left")
            else:
                df["mask"] = None
            parts.append(df)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=OBJECT_COLUMNS)


def open_source(supervision: str, labels: str | os.PathLike | None = None,
                data: str | os.PathLike | None = None, domain: str | None = None,
                split: str | None = None) -> ClipSource:
    """The clip source of a run.

    Args:
        supervision: ``"weak"`` (``labels`` = a ``raysys label`` output) or ``"full"``
            (``data`` = the dataset root; reads GT).
        labels: Stage 1 output folder; its ``config.json`` names the data, domain, split.
        data, domain, split: override those (``data`` is required for ``"full"`` without
            labels; domain/split default to the labels', else In-domain/train).

    Raises:
        ValueError: with weak supervision, labels made from another dataset, domain or
            split, or from frames that changed since (a regenerated dataset).
    """
    meta: dict = {}
    if labels is not None:
        labels = storage.path(labels)
        f = labels / "config.json"
        if not f.is_file():
            raise FileNotFoundError(f"{labels} is not a `raysys label` output: {f} not found "
                                    "(run `raysys label --data DATA --out LABELS` first)")
        meta = json.loads(f.read_text())
        for name in ("tracklets", "trajectories", "expressions"):
            if supervision == "weak" and not (labels / f"{name}.parquet").is_file():
                raise FileNotFoundError(f"{labels / (name + '.parquet')} not found: is the "
                                        "labeling run finished?")
    root = data or meta.get("data")
    if root is None:
        raise ValueError("no dataset: pass --data DIR (required for --supervision full "
                         "without --labels)")
    layout = DatasetLayout(root, domain or meta.get("domain", "In-domain"),
                           split or meta.get("split", "train"))
    if supervision == "weak":
        if labels is None:
            raise ValueError("weak supervision trains on pseudo labels: pass --labels DIR")
        from raysys.labeling.record import check_labels_match

        check_labels_match(labels, layout)  # the frames the labels were made from
        return PseudoLabelSource(labels, layout)
    if supervision == "full":
        return GroundTruthSource(layout)
    raise ValueError(f"supervision must be 'weak' or 'full', got {supervision!r}")


# ----------------------------------------------------------------------------- planning


