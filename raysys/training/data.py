"""Training clips for ViewSAM from Stage 1's pseudo labels (or, explicitly, from GT).

One training **sample** is (scene, expression, start frame): ``T`` synchronised frames of
every view, the expression's text, and ``M`` objects padded to a fixed count (referred ones
first, then distractors of the scene, same category first). The driver plans small JSON
descriptors (:func:`plan_samples`); decoding happens in a Ray Data ``map_batches`` actor
pool (:class:`ClipLoader` -> :func:`load_clip`), and the training workers turn the numpy
batches into tensors (:func:`collate`). Clip arrays (uint8 frames, bool masks) stream
through Ray Data; nothing is decoded on the driver.

Sources (same interface, :func:`open_source`):

* :class:`PseudoLabelSource` (``supervision="weak"``): ``tracklets.parquet`` joined with
  ``trajectories.parquet`` (global id per view tracklet) and ``expressions.parquet``; frames
  from the dataset's image folders. It reads nothing under ``gt/`` or ``meta/``; training
  runs it under :mod:`raysys.labeling.guard`, so a GT read raises.
* :class:`GroundTruthSource` (``supervision="full"``, the fully supervised comparison row
  only): all-object GT tracks (``meta/.../tracks``), GT expressions (``gt/``), GT masks
  (``meta/.../masks/View<k>.parquet``) when present.

Variants (paper §4.1), our reading:

* ``id_agnostic``: identity is not supervised. Stage 1's global ids never reach a loss: the
  objects of a sample get anonymous ids ``0..M-1`` and the cross-view consistency loss (the
  only loss that reads identities) is off (:attr:`TrainConfig.model_config`).
* ``refer_agnostic``: referring is not supervised. Every object of the expression's
  category(ies) visible in the clip is a referred target, whatever the text says.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysys.io.crtrack import list_frames, list_image_views
from raysys.io.dataset import DatasetLayout
from raysys.training.config import TrainConfig

__all__ = ["ClipSource", "PseudoLabelSource", "GroundTruthSource", "open_source",
           "ClipSpec", "plan_samples", "load_clip", "ClipLoader", "collate",
           "build_train_dataset"]

OBJECT_COLUMNS = ["view", "frame", "global_id", "category", "left", "top", "width", "height",
                  "mask"]


@dataclass(frozen=True)
class ClipSpec:
    """How samples become arrays (resolved on the driver, shipped to the loaders)."""

    size: int  # square side S of frames, boxes and masks
    frames: int  # T
    stride: int  # frames between clip starts
    step: int  # frame step inside a clip
    max_objects: int  # M
    max_views: int | None  # first k views of a scene (None = all)
    min_box_side: float  # boxes thinner than this (input pixels) count as not visible
    use_masks: bool  # decode masks (else the model fills boxes)
    variant: str  # standard | id_agnostic | refer_agnostic
    max_dense: int = 32  # A: every labelled object of a frame, for the CG's dense targets

    @staticmethod
    def from_config(cfg: TrainConfig, size: int) -> ClipSpec:
        return ClipSpec(size=size, frames=cfg.clip_frames, stride=cfg.clip_stride,
                        step=cfg.frame_step, max_objects=cfg.max_objects,
                        max_views=cfg.max_views, min_box_side=cfg.min_box_side,
                        use_masks=cfg.use_masks, variant=cfg.variant,
                        max_dense=cfg.max_dense_objects)


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
        self.labels = Path(labels)

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
    """
    meta: dict = {}
    if labels is not None:
        labels = Path(labels)
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
    layout = DatasetLayout(Path(root), domain or meta.get("domain", "In-domain"),
                           split or meta.get("split", "train"))
    if supervision == "weak":
        if labels is None:
            raise ValueError("weak supervision trains on pseudo labels: pass --labels DIR")
        return PseudoLabelSource(labels, layout)
    if supervision == "full":
        return GroundTruthSource(layout)
    raise ValueError(f"supervision must be 'weak' or 'full', got {supervision!r}")


# ----------------------------------------------------------------------------- planning


def _clip_frames(numbers: list[int], spec: ClipSpec) -> list[list[int]]:
    span = (spec.frames - 1) * spec.step + 1
    return [numbers[s:s + span:spec.step] for s in range(0, len(numbers) - span + 1, spec.stride)]


def _choose_objects(expr_ids: list[int], present: dict[int, int], cats: dict[int, str],
                    spec: ClipSpec) -> tuple[list[int], list[bool]]:
    """Referred objects (present in the clip) first, then distractors, capped at M.

    ``present``: global id -> number of (view, frame) boxes in the clip.
    """
    if spec.variant == "refer_agnostic":  # every object of the expression's categories
        want = {cats[g] for g in expr_ids if g in cats}
        referred = [g for g in present if cats.get(g) in want]
    else:
        referred = [g for g in expr_ids if g in present]
    ref_cats = {cats.get(g) for g in referred}
    others = [g for g in present if g not in set(referred)]
    # hard negatives first: same category, then the most visible
    others.sort(key=lambda g: (cats.get(g) not in ref_cats, -present[g], g))
    referred.sort(key=lambda g: (-present[g], g))
    ids = (referred + others)[:spec.max_objects]
    return ids, [g in set(referred) for g in ids]


def plan_samples(source: ClipSource, spec: ClipSpec, max_samples: int | None = None,
                 seed: int = 0) -> list[dict]:
    """Sample descriptors ``{"scene", "expression_id", "text", "views", "frames",
    "object_ids", "referred"}``: one per (expression, clip start) in which a referred object
    is visible; shuffled with ``seed`` and capped at ``max_samples``."""
    out = []
    for e in source.expressions():
        scene = e["scene"]
        views = source.views(scene)[:spec.max_views]
        df = source.objects(scene)
        df = df[df["view"].isin(views)]
        cats = dict(zip(df["global_id"].astype(int), df["category"], strict=False))
        for frames in _clip_frames(source.frame_numbers(scene), spec):
            sub = df[df["frame"].isin(frames) & (df["width"] >= spec.min_box_side)
                     & (df["height"] >= spec.min_box_side)]
            present = {int(g): int(n) for g, n in sub["global_id"].value_counts().items()}
            ids, referred = _choose_objects(e["global_ids"], present, cats, spec)
            if not any(referred):
                continue
            out.append({"scene": scene, "expression_id": e["expression_id"], "text": e["text"],
                        "views": list(views), "frames": [int(f) for f in frames],
                        "object_ids": ids, "referred": referred})
    if not out:
        raise ValueError(f"no training clips: every clip needs {spec.frames} frames (step "
                         f"{spec.step}) with a referred object visible; lower clip_frames or "
                         "check the labels")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(out))
    return [out[i] for i in order[:max_samples]]


# ----------------------------------------------------------------------------- loading


def _read_resized(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        wh = im.size
        arr = np.asarray(im.resize((size, size), Image.BILINEAR))
    return arr.transpose(2, 0, 1), (wh[1], wh[0])  # (3, S, S), (H, W)


def _mask_resized(rle: str, size: int) -> np.ndarray:
    from PIL import Image

    from raysys.types import MaskRLE

    m = MaskRLE.from_string(rle).decode()
    im = Image.fromarray(m.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return np.asarray(im) > 127


def load_clip(source: ClipSource, sample: dict, spec: ClipSpec) -> dict[str, np.ndarray]:
    """Decode one sample: ``frames`` (V, T, 3, S, S) uint8, ``boxes`` (V, T, M, 4) float32
    xyxy in S-pixels, ``visible`` (V, T, M) bool, ``masks`` (V, T, M, S, S) bool, ``ids``
    (M,) int64 (-1 = padding), ``referred`` (M,) bool, ``view_ids`` (V,) int64, ``text``;
    ``dense_boxes`` (V, T, A, 4) / ``dense_visible`` (V, T, A): every labelled object of each
    frame (not only the sample's M), the Candidate Generator's dense targets, so that an
    object left out of the M is not taught as background."""
    s, m, a = spec.size, spec.max_objects, spec.max_dense
    views, frames, ids = sample["views"], sample["frames"], sample["object_ids"]
    v, t = len(views), len(frames)
    out = {"frames": np.zeros((v, t, 3, s, s), np.uint8),
           "boxes": np.zeros((v, t, m, 4), np.float32),
           "visible": np.zeros((v, t, m), bool),
           "masks": np.zeros((v, t, m, s, s) if spec.use_masks else (0,), bool),
           "dense_boxes": np.zeros((v, t, a, 4), np.float32),
           "dense_visible": np.zeros((v, t, a), bool)}
    slot = {g: k for k, g in enumerate(ids)}
    df = source.objects(sample["scene"])
    df = df[df["frame"].isin(frames)]
    ok = (df["width"] >= spec.min_box_side) & (df["height"] >= spec.min_box_side)
    for (view, f), grp in df[ok & df["view"].isin(views)].groupby(["view", "frame"]):
        i, j = views.index(view), frames.index(int(f))
        xywh = grp[["left", "top", "width", "height"]].to_numpy(np.float32)[:a]
        out["dense_boxes"][i, j, :len(xywh)] = np.concatenate(
            [xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)  # input pixels, scaled below
        out["dense_visible"][i, j, :len(xywh)] = True
    df = df[df["global_id"].isin(ids)]
    rows = {(r.view, int(r.frame), int(r.global_id)): r for r in df.itertuples(index=False)}
    for i, view in enumerate(views):
        paths = source.frame_paths(sample["scene"], view)
        for j, f in enumerate(frames):
            out["frames"][i, j], (h, w) = _read_resized(paths[f], s)
            scale = np.array([s / w, s / h, s / w, s / h], np.float32)
            out["dense_boxes"][i, j] = np.clip(out["dense_boxes"][i, j], 0, [w, h, w, h]) * scale
            for g, k in slot.items():
                r = rows.get((view, f, g))
                if r is None or r.width < spec.min_box_side or r.height < spec.min_box_side:
                    continue
                box = np.array([r.left, r.top, r.left + r.width, r.top + r.height], np.float32)
                box = np.clip(box, 0, [w, h, w, h])
                out["boxes"][i, j, k] = box * scale
                out["visible"][i, j, k] = True
                if spec.use_masks and isinstance(r.mask, str) and r.mask:
                    out["masks"][i, j, k] = _mask_resized(r.mask, s)
                elif spec.use_masks:  # no mask in the labels: the box, filled in
                    x0, y0, x1, y1 = np.round(box * scale).astype(int)
                    out["masks"][i, j, k, y0:y1, x0:x1] = True
    gid = np.full(m, -1, np.int64)
    ref = np.zeros(m, bool)
    n = len(ids)
    gid[:n] = np.arange(n) if spec.variant == "id_agnostic" else ids
    ref[:n] = sample["referred"]
    out |= {"ids": gid, "referred": ref, "text": np.array(sample["text"], dtype=object),
            "view_ids": np.array([_view_index(x) for x in views], np.int64)}
    return out


def _view_index(view: str) -> int:
    digits = "".join(c for c in view if c.isdigit())
    return int(digits) - 1 if digits else 0


class ClipLoader:
    """Ray Data ``map_batches`` UDF: JSON descriptors (column ``sample``) -> clip arrays."""

    def __init__(self, source: ClipSource, spec: ClipSpec) -> None:
        self.source, self.spec = source, spec

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        clips = [load_clip(self.source, json.loads(str(x)), self.spec) for x in batch["sample"]]
        return {k: np.stack([c[k] for c in clips]) for k in clips[0]}


def collate(batch: dict[str, np.ndarray], device=None):
    """A numpy batch of clips -> ``(frames (B, V, T, 3, S, S) float in [0, 1], texts,
    ClipTargets, view_ids (B, V))`` on ``device``."""
    import torch

    from raysys.viewsam.data import ClipTargets

    def t(x, dtype=None):
        return torch.as_tensor(np.array(x), dtype=dtype, device=device)  # copy: Ray's are read-only

    frames = t(batch["frames"]).float().div_(255.0)
    masks = batch["masks"]
    targets = ClipTargets(boxes=t(batch["boxes"], torch.float32),
                          visible=t(batch["visible"], torch.bool),
                          ids=t(batch["ids"], torch.long),
                          referred=t(batch["referred"], torch.bool),
                          masks=t(masks).float() if masks.ndim == 6 else None,
                          dense_boxes=t(batch["dense_boxes"], torch.float32)
                          if "dense_boxes" in batch else None,
                          dense_visible=t(batch["dense_visible"], torch.bool)
                          if "dense_visible" in batch else None)
    texts = [str(x) for x in np.asarray(batch["text"]).reshape(-1)]
    return frames, texts, targets, t(batch["view_ids"], torch.long)


def build_train_dataset(samples: list[dict], source: ClipSource, spec: ClipSpec,
                        loader_cpus: float = 0.25, loaders: int = 1):
    """A Ray Dataset of decoded clips: descriptors -> ``ClipLoader`` actor pool."""
    import ray

    ds = ray.data.from_items([{"sample": json.dumps(s)} for s in samples])
    return ds.map_batches(ClipLoader, fn_constructor_args=(source, spec), batch_size=1,
                          batch_format="numpy", num_cpus=loader_cpus,
                          compute=ray.data.ActorPoolStrategy(min_size=1, max_size=loaders))
