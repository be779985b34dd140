"""Training clips for ViewSAM from Stage 1's pseudo labels (or, explicitly, from GT).

One training **sample** is (scene, expression, start frame): ``T`` synchronised frames of
every view, the expression's text, and ``M`` objects padded to a fixed count (referred ones
first, then distractors of the scene, same category first). The driver plans small JSON
descriptors (:func:`plan_samples`); decoding happens in a Ray Data ``map_batches`` actor
pool (:class:`ClipLoader` -> :func:`load_clip`), and the training workers turn the numpy
batches into tensors (:func:`collate`). Clip arrays (uint8 frames, bool masks) stream
through Ray Data; nothing is decoded on the driver.

Sources: :mod:`raysys.training.sources`. The labels each stage trains on (§4.1) are derived
from these samples by :mod:`raysys.training.labels`. Each training worker reads one dataset
for the whole run (:func:`shard_name`): every epoch of every stage in schedule order, each
row tagged with its place in the schedule (:func:`build_train_datasets`), so one decoding
actor pool serves all epochs instead of a new one starting per epoch, and
:class:`EpochBatches` hands the worker one epoch at a time. View ids follow
:mod:`raysys.io.views`, as in the tracker.

Whole-run variants (``TrainConfig.variant``, comparisons; our reading):

* ``id_agnostic``: identity is not supervised. Stage 1's global ids never reach a loss: the
  objects of a sample get anonymous ids ``0..M-1`` and the cross-view consistency loss (the
  only loss that reads identities) is off (:attr:`TrainConfig.model_config`).
* ``refer_agnostic``: referring is not supervised. Every object of the expression's
  category(ies) visible in the clip is a referred target, whatever the text says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysys.io.frames import read_frame
from raysys.io.views import view_ids
from raysys.training.config import TrainConfig
from raysys.training.sources import ClipSource

__all__ = ["ClipSpec", "plan_samples", "load_clip", "ClipLoader", "collate",
           "build_train_datasets", "shard_name", "crop_frame_of", "EpochBatches", "SLOT"]

SLOT = "schedule_epoch"  # the column tagging each clip with its epoch's place in the schedule

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
    crop_size: tuple[int, int] | None = None  # (h, w) crops of each object at its box from
    #   the full-resolution frame, for CGCT's OSNet backbone (None: no crops)
    crop_frame: tuple[int, int] | None = None  # (h, w): also each frame at this size, where
    #   a Candidate Generator with attribute_net cuts its crops and its proposal_net reads
    #   the frame (None: not needed)

    @staticmethod
    def from_config(cfg: TrainConfig, size: int) -> ClipSpec:
        return ClipSpec(size=size, frames=cfg.clip_frames, stride=cfg.clip_stride,
                        step=cfg.frame_step, max_objects=cfg.max_objects,
                        max_views=cfg.max_views, min_box_side=cfg.min_box_side,
                        use_masks=cfg.use_masks, variant=cfg.variant,
                        max_dense=cfg.max_dense_objects, crop_size=_crop_size(cfg),
                        crop_frame=crop_frame_of(cfg.model))


def crop_frame_of(m) -> tuple[int, int] | None:
    """The frame size a model config's Candidate Generator cuts attribute crops at and
    runs its proposal detector on, or None (no Candidate Generator, or none with
    ``attribute_net`` or ``proposal_net``)."""
    cg = m.candidate_generator
    return (tuple(cg.crop_frame) if m.use_candidate_generator
            and (cg.attribute_net or cg.proposal_net) else None)


def _crop_size(cfg: TrainConfig) -> tuple[int, int] | None:
    from raysys.viewsam.osnet_backbone import CROP_SIZE

    m = cfg.model
    return CROP_SIZE if m.use_cgct and m.cgct.backbone in ("osnet", "attribute") else None


def _resized(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` (H, W, 3) uint8 at ``size`` (h, w), resampled as the tracker resamples its
    frames (:func:`raysys.viewsam.attribute_roi.crop_frames_at`), rounded to uint8."""
    if img.shape[:2] == tuple(size):
        return img
    import torch

    from raysys.viewsam.attribute_roi import crop_frames_at

    x = torch.as_tensor(np.array(img)).permute(2, 0, 1)[None, None, None]  # a writable copy
    out = crop_frames_at(x, size)[0].mul(255.0).round().clamp(0, 255).to(torch.uint8)
    return out.permute(1, 2, 0).numpy()


def _crops(img: np.ndarray, boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(n, 3, h, w)`` uint8 crops of ``img`` (H, W, 3) at ``boxes`` (n, 4) xyxy pixels."""
    import torch

    from raysys.viewsam.osnet_backbone import crop_objects

    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None]
    c = crop_objects(x, torch.from_numpy(boxes.astype(np.float32))[None], size)[0]
    return c.round().clamp(0, 255).to(torch.uint8).numpy()


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
    """Sample descriptors ``{"scene", "expression_id", "text", "views", "view_ids",
    "frames", "object_ids", "referred", "anonymous_ids"}``: one per (expression, clip start)
    in which a referred object is visible; shuffled with ``seed`` and capped at
    ``max_samples``. ``view_ids`` number the views within all the scene's views
    (:func:`raysys.io.views.view_ids`); ``anonymous_ids`` is the ``id_agnostic`` variant."""
    out = []
    for e in source.expressions():
        scene = e["scene"]
        views = source.views(scene)[:spec.max_views]
        vids = view_ids(views, source.views(scene))
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
                        "views": list(views), "view_ids": vids,
                        "frames": [int(f) for f in frames], "object_ids": ids,
                        "referred": referred, "anonymous_ids": spec.variant == "id_agnostic"})
    if not out:
        raise ValueError(f"no training clips: every clip needs {spec.frames} frames (step "
                         f"{spec.step}) with a referred object visible; lower clip_frames or "
                         "check the labels")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(out))
    return [out[i] for i in order[:max_samples]]


# ----------------------------------------------------------------------------- loading


def _read_resized(path: Path, size: int, scene: str | None = None, view: str | None = None,
                  frame: int | None = None, full: bool = False):
    """A frame resized to ``size`` x ``size``: (3, S, S) uint8 and its (H, W) (and with
    ``full``, the frame itself, (H, W, 3)).

    Raises:
        FrameError: the frame cannot be decoded (names the file, scene, view and frame; a
            corrupt frame fails training, see :mod:`raysys.io.frames`).
    """
    from PIL import Image

    img = read_frame(path, scene, view, frame)  # (H, W, 3)
    arr = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    if full:
        return arr.transpose(2, 0, 1), img.shape[:2], img
    return arr.transpose(2, 0, 1), img.shape[:2]  # (3, S, S), (H, W)


def _mask_resized(rle: str, size: int) -> np.ndarray:
    from PIL import Image

    from raysys.types import MaskRLE

    m = MaskRLE.from_string(rle).decode()
    im = Image.fromarray(m.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return np.asarray(im) > 127


def load_clip(source: ClipSource, sample: dict, spec: ClipSpec) -> dict[str, np.ndarray]:
    """Decode one sample: ``frames`` (V, T, 3, S, S) uint8, ``boxes`` (V, T, M, 4) float32
    xyxy in S-pixels, ``visible`` (V, T, M) bool, ``masks`` (V, T, M, S, S) bool, ``ids``
    (M,) int64 (-1 = padding; ``0..n-1`` with ``anonymous_ids``), ``referred`` (M,) bool,
    ``view_ids`` (V,) int64 (the sample's, else :func:`raysys.io.views.view_ids`), ``text``;
    ``dense_boxes`` (V, T, A, 4) / ``dense_visible`` (V, T, A): every labelled object of each
    frame (not only the sample's M), the Candidate Generator's dense targets, so that an
    object left out of the M is not taught as background; with ``spec.crop_size``,
    ``crops`` (V, T, M, 3, h, w) uint8: each object at its box in the full-resolution
    frame (CGCT's OSNet backbone)."""
    s, m, a = spec.size, spec.max_objects, spec.max_dense
    views, frames, ids = sample["views"], sample["frames"], sample["object_ids"]
    v, t = len(views), len(frames)
    out = {"frames": np.zeros((v, t, 3, s, s), np.uint8),
           "boxes": np.zeros((v, t, m, 4), np.float32),
           "visible": np.zeros((v, t, m), bool),
           "masks": np.zeros((v, t, m, s, s) if spec.use_masks else (0,), bool),
           "dense_boxes": np.zeros((v, t, a, 4), np.float32),
           "dense_visible": np.zeros((v, t, a), bool)}
    if spec.crop_size:
        out["crops"] = np.zeros((v, t, m, 3, *spec.crop_size), np.uint8)
    if spec.crop_frame:
        out["crop_frames"] = np.zeros((v, t, 3, *spec.crop_frame), np.uint8)
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
            out["frames"][i, j], (h, w), img = _read_resized(paths[f], s, sample["scene"],
                                                               view, f, full=True)
            scale = np.array([s / w, s / h, s / w, s / h], np.float32)
            if spec.crop_frame:
                out["crop_frames"][i, j] = _resized(img, spec.crop_frame).transpose(2, 0, 1)
            cut = {}  # slot -> full-resolution box, for the crops
            out["dense_boxes"][i, j] = np.clip(out["dense_boxes"][i, j], 0, [w, h, w, h]) * scale
            for g, k in slot.items():
                r = rows.get((view, f, g))
                if r is None or r.width < spec.min_box_side or r.height < spec.min_box_side:
                    continue
                box = np.array([r.left, r.top, r.left + r.width, r.top + r.height], np.float32)
                box = np.clip(box, 0, [w, h, w, h])
                out["boxes"][i, j, k] = box * scale
                out["visible"][i, j, k] = True
                cut[k] = box
                if spec.use_masks and isinstance(r.mask, str) and r.mask:
                    out["masks"][i, j, k] = _mask_resized(r.mask, s)
                elif spec.use_masks:  # no mask in the labels: the box, filled in
                    x0, y0, x1, y1 = np.round(box * scale).astype(int)
                    out["masks"][i, j, k, y0:y1, x0:x1] = True
            if spec.crop_size and cut:
                out["crops"][i, j, list(cut)] = _crops(img, np.stack(list(cut.values())),
                                                        spec.crop_size)
    gid = np.full(m, -1, np.int64)
    ref = np.zeros(m, bool)
    n = len(ids)
    gid[:n] = np.arange(n) if sample.get("anonymous_ids", spec.variant == "id_agnostic") \
        else ids
    ref[:n] = sample["referred"]
    vids = sample["view_ids"] if "view_ids" in sample else view_ids(views)
    out |= {"ids": gid, "referred": ref, "text": np.array(sample["text"], dtype=object),
            "view_ids": np.array(vids, np.int64)}
    return out


class ClipLoader:
    """Ray Data ``map_batches`` UDF: JSON descriptors (column ``sample``) -> clip arrays
    (the :data:`SLOT` column, when there is one, passes through)."""

    def __init__(self, source: ClipSource, spec: ClipSpec) -> None:
        self.source, self.spec = source, spec

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        clips = [load_clip(self.source, json.loads(str(x)), self.spec) for x in batch["sample"]]
        out = {k: np.stack([c[k] for c in clips]) for k in clips[0]}
        if SLOT in batch:
            out[SLOT] = np.asarray(batch[SLOT], np.int64)
        return out


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
                          if "dense_visible" in batch else None,
                          crops=t(batch["crops"]) if "crops" in batch else None,
                          crop_frames=t(batch["crop_frames"]) if "crop_frames" in batch
                          else None)
    texts = [str(x) for x in np.asarray(batch["text"]).reshape(-1)]
    return frames, texts, targets, t(batch["view_ids"], torch.long)


def shard_name(rank: int) -> str:
    """The dataset that the training worker of rank ``rank`` reads
    (:func:`build_train_datasets`)."""
    return f"train_{rank}"


def build_train_datasets(schedule: list[tuple[int, list[dict]]], source: ClipSource,
                         spec: ClipSpec, workers: int, loader_cpus: float = 0.25,
                         loaders: int = 1) -> dict:
    """One Ray Dataset of decoded clips per training worker for the whole run (descriptors
    -> ``ClipLoader`` actor pool), keyed by :func:`shard_name`.

    ``schedule``: ``(slot, samples)`` per epoch in the order the worker trains them
    (``slot``: the epoch's place in the run's schedule, 1-based, increasing; ``samples``:
    the descriptors of its stage's labels). Every row carries its epoch's slot (column
    :data:`SLOT`); :class:`EpochBatches` splits the stream back into epochs. One dataset
    for the run, not one per epoch: Ray Data starts a decoding actor (which imports torch
    and loads the label tables) each time a dataset runs, about 10 s per epoch on 2 cores.

    Worker ``r`` reads samples ``r, r + W, r + 2W, ...`` of each epoch, the same count for
    every worker (DDP steps pair up; the last ``len(samples) % W`` are left out), in order:
    which clips meet in a step does not depend on timing, so a run is reproducible. (A
    dynamic ``streaming_split`` hands blocks to whichever worker asks first.)
    """
    import ray

    out = {}
    for r in range(workers):
        rows = [{"sample": json.dumps(s), SLOT: slot} for slot, samples in schedule
                for s in samples[r::workers][:len(samples) // workers]]
        ds = ray.data.from_items(rows)
        out[shard_name(r)] = ds.map_batches(
            ClipLoader, fn_constructor_args=(source, spec), batch_size=1,
            batch_format="numpy", num_cpus=loader_cpus,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=loaders))
    return out


class EpochBatches:
    """A training worker's clip stream (:func:`build_train_datasets`), one epoch at a time.

    ``epoch(slot)`` yields the numpy batches (``batch_size`` clips; the last may be
    smaller) of the epoch at ``slot``, after dropping the rows of earlier slots: those of
    epochs done before a restart (Ray Train re-runs a dataset from its start when it
    restarts the workers) or of a stage the worker skips. Rows of later slots stay for the
    next call.
    """

    def __init__(self, shard, batch_size: int = 1) -> None:
        self._rows = iter(shard.iter_batches(batch_size=1, batch_format="numpy"))
        self._head: dict | None = None
        self.batch_size = batch_size

    def _peek(self) -> dict | None:
        if self._head is None:
            self._head = next(self._rows, None)
        return self._head

    def epoch(self, slot: int):
        buf: list[dict] = []
        while (row := self._peek()) is not None and int(row[SLOT][0]) <= slot:
            self._head = None
            if int(row[SLOT][0]) < slot:
                continue  # an epoch done before a restart, or a skipped stage's
            buf.append(row)
            if len(buf) == self.batch_size:
                yield _concat(buf)
                buf = []
        if buf:
            yield _concat(buf)


def _concat(rows: list[dict]) -> dict[str, np.ndarray]:
    if len(rows) == 1:
        return rows[0]
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
