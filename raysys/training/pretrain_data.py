"""Pre-training data of the SAM2 base: generated scenes kept in memory at the model's input
size, and random clips of them (:mod:`raysys.training.pretrain_base` says what and why)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from raysys.training.pretrain_base import PretrainConfig

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- scenes


@dataclass
class SceneArrays:
    """One scene at the model's input size (every view; frames resized like the tracker)."""

    name: str  # "<domain>/<split>/<Scene>"
    frames: np.ndarray  # (V, F, 3, S, S) uint8 RGB
    labels: np.ndarray  # (V, F, S, S) int16: 0 background, k + 1 object k (masks disjoint)
    boxes: np.ndarray  # (V, F, K, 4) float32 xyxy in model pixels (0 where absent)
    area: np.ndarray  # (V, F, K) int32 mask pixels at S (0 where absent)
    ids: np.ndarray  # (K,) int64 global ids of the scene's labelled objects


def scene_specs(seed: int, scenes: int, split: str = "train",
                domains: Sequence[str] = ("In-domain", "Cross-domain"),
                synth: dict | None = None) -> list:
    """``scenes`` scenes of ``seed`` (``split``), alternating over ``domains``."""
    from raysys.synth.config import SynthConfig
    from raysys.synth.generate import plan_scenes

    per = math.ceil(scenes / len(domains))
    cfg = SynthConfig(**{**(synth or {}), "seed": seed, "scenes": per, "splits": (split,),
                         "domains": tuple(domains)})
    by_domain = {d: [s for s in plan_scenes(cfg) if s.domain == d] for d in domains}
    order = [by_domain[d][i] for i in range(per) for d in domains]
    return order[:scenes]


def _resize_frame(path: Path, size: int) -> np.ndarray:
    """An RGB frame resized to ``size`` x ``size`` as the tracker resizes it (bilinear, no
    antialiasing: ``F.interpolate`` in ``ViewSAM.encode_clip``), ``(3, S, S)`` uint8."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        from raysys.io.frames import FrameError

        raise FrameError(path, "cannot be decoded (missing, empty, truncated or not an image)")
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))


def load_scene_arrays(layout, scene: str, image_size: int) -> SceneArrays:
    """Read a generated scene's frames and GT masks/boxes (``meta/.../masks/View<k>.parquet``)
    into :class:`SceneArrays` at ``image_size``.

    Args:
        layout: :class:`raysys.io.dataset.DatasetLayout` of the (domain, split).
    """
    import cv2
    import pyarrow.parquet as pq

    from raysys.io.crtrack import list_frames, view_sort_key
    from raysys.types import MaskRLE

    s = int(image_size)
    mdir = layout.meta_dir(scene) / "masks"
    files = sorted(mdir.glob("View*.parquet"), key=lambda p: view_sort_key(p.stem))
    if not files:
        raise FileNotFoundError(f"no GT masks of scene {scene!r}: {mdir}/View<k>.parquet "
                                "(a dataset made by `raysys synth`)")
    tables = {f.stem: pq.read_table(f).to_pandas() for f in files}
    ids = np.array(sorted({int(g) for t in tables.values() for g in t["id"]}), np.int64)
    slot = {int(g): k for k, g in enumerate(ids)}
    views = list(tables)
    paths = {v: dict(list_frames(layout.view_dir(scene, v))) for v in views}
    numbers = sorted(set.intersection(*(set(p) for p in paths.values())))
    if not numbers:
        raise FileNotFoundError(f"no frames of scene {scene!r} under {layout.image_root}")
    n_v, n_f, n_k = len(views), len(numbers), max(len(ids), 1)
    frames = np.zeros((n_v, n_f, 3, s, s), np.uint8)
    labels = np.zeros((n_v, n_f, s, s), np.int16)
    boxes = np.zeros((n_v, n_f, n_k, 4), np.float32)
    area = np.zeros((n_v, n_f, n_k), np.int32)
    fidx = {f: j for j, f in enumerate(numbers)}
    for i, v in enumerate(views):
        for f, j in fidx.items():
            frames[i, j] = _resize_frame(paths[v][f], s)
        for f, grp in tables[v].groupby("frame"):
            j = fidx.get(int(f))
            if j is None:
                continue
            full = None
            for r in grp.itertuples(index=False):
                m = MaskRLE.from_string(r.rle)
                if full is None:
                    full = np.zeros((m.height, m.width), np.int16)
                    scale = np.array([s / m.width, s / m.height] * 2, np.float32)
                k = slot[int(r.id)]
                full[m.decode()] = k + 1
                box = np.array([r.left, r.top, r.left + r.width, r.top + r.height], np.float32)
                boxes[i, j, k] = np.clip(box * scale, 0, s)
            if full is None:
                continue
            lab = cv2.resize(full, (s, s), interpolation=cv2.INTER_NEAREST)
            labels[i, j] = lab
            cnt = np.bincount(lab.ravel().astype(np.int64), minlength=n_k + 1)[1:n_k + 1]
            area[i, j] = cnt
    return SceneArrays(name=f"{layout.domain}/{layout.split}/{scene}", frames=frames,
                       labels=labels, boxes=boxes, area=area, ids=ids)


def load_dataset_scenes(root: str | os.PathLike, domain: str, split: str, image_size: int,
                        max_scenes: int | None = None) -> list[SceneArrays]:
    """Every scene (sorted; the first ``max_scenes``) of a generated dataset's (domain,
    split) with GT masks, as :class:`SceneArrays` (``raysys synth`` output)."""
    from raysys.io.dataset import DatasetLayout

    lay = DatasetLayout(Path(root), domain, split)
    base = lay.meta_dir("x").parent
    names = sorted(p.name for p in base.glob("*") if (p / "masks").is_dir()) \
        if base.is_dir() else []
    if not names:
        raise FileNotFoundError(f"no scene with GT masks under {base} (a `raysys synth` "
                                f"dataset with the {domain} {split} split)")
    return [load_scene_arrays(lay, n, image_size) for n in names[:max_scenes]]


def render_scene_arrays(spec, image_size: int, tmp_root: str | os.PathLike) -> SceneArrays:
    """Render one synth scene into a private temp folder, read it, delete the files.

    A top-level function of picklable arguments: the process pool's task.
    """
    from raysys.synth.generate import render_scene

    root = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=tmp_root))
    try:
        render_scene(spec, root)
        return load_scene_arrays(spec.layout(root), spec.name, image_size)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _render_task(args: tuple) -> SceneArrays:
    return render_scene_arrays(*args)


def generate_scenes(specs: Sequence, image_size: int, workers: int = 0,
                    tmp_root: str | os.PathLike | None = None) -> list[SceneArrays]:
    """Render ``specs`` (:func:`scene_specs`) in a process pool (``workers`` processes, 0 =
    every CPU, 1 = in this process) and return their arrays in ``specs`` order."""
    import multiprocessing as mp

    if not workers:  # the CPUs this process may run on (os.cpu_count() counts the host's)
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    workers = max(1, min(workers, len(specs)))
    with tempfile.TemporaryDirectory(prefix="raysys-pretrain-", dir=tmp_root) as tmp:
        tasks = [(s, int(image_size), tmp) for s in specs]
        t0 = time.perf_counter()
        out: list[SceneArrays] = []
        if workers == 1:
            for t in tasks:
                out.append(_render_task(t))
                log.info("scene %d/%d (%s) in %.0f s", len(out), len(tasks), out[-1].name,
                         time.perf_counter() - t0)
            return out
        # spawn: the parent may hold torch threads (and, on a GPU machine, CUDA)
        with mp.get_context("spawn").Pool(workers) as pool:
            for a in pool.imap(_render_task, tasks):
                out.append(a)
                if len(out) % max(1, len(tasks) // 8) == 0 or len(out) == len(tasks):
                    log.info("scenes %d/%d rendered (%d processes, %.0f s)", len(out),
                             len(tasks), workers, time.perf_counter() - t0)
        return out


# ----------------------------------------------------------------------------- clips


@dataclass
class Clips:
    """A batch of clips and their objects (objects are SAM2's batch dimension).

    ``frames`` ``(B, T, 3, S, S)`` uint8; per object ``n`` of ``N``: ``clip`` ``(N,)`` its
    clip, ``masks`` ``(N, T, S, S)`` bool, ``boxes`` ``(N, T, 4)`` xyxy model pixels (GT),
    ``visible`` ``(N, T)`` bool (mask not empty), ``prompts`` ``(N, T, 4)`` the (noised) boxes
    to prompt with and ``prompted`` ``(N, T)`` bool where a prompt is given (training).
    """

    frames: Any
    clip: Any
    masks: Any
    boxes: Any
    visible: Any
    prompts: Any = None
    prompted: Any = None

    @property
    def num_objects(self) -> int:
        return int(self.clip.shape[0])

    def to(self, device) -> Clips:
        return Clips(**{f.name: None if getattr(self, f.name) is None
                        else getattr(self, f.name).to(device)
                        for f in dataclasses.fields(self)})


class ScenePool:
    """Scenes held as tensors (on ``device``) that random clips are cut from.

    Every (scene, view) is a sequence; a clip is ``T`` frames of one sequence. Frames and
    label maps stay on ``device`` (a GPU holds dozens of scenes easily), so a batch is an
    index operation there; only the small per-object tables go through numpy.
    """

    def __init__(self, scenes: Sequence[SceneArrays], device="cpu") -> None:
        import torch

        if not scenes:
            raise ValueError("no scenes")
        s = scenes[0].frames.shape[-1]
        n_f = min(a.frames.shape[1] for a in scenes)
        n_k = max(a.boxes.shape[2] for a in scenes)
        seqs = [(a, v) for a in scenes for v in range(a.frames.shape[0])]
        self.names = [f"{a.name}/View{v + 1}" for a, v in seqs]
        self.size, self.num_frames = s, n_f
        frames = np.stack([a.frames[v, :n_f] for a, v in seqs])  # (R, F, 3, S, S)
        labels = np.stack([a.labels[v, :n_f] for a, v in seqs])  # (R, F, S, S)
        self.boxes = np.zeros((len(seqs), n_f, n_k, 4), np.float32)
        self.area = np.zeros((len(seqs), n_f, n_k), np.int32)
        for r, (a, v) in enumerate(seqs):
            k = a.boxes.shape[2]
            self.boxes[r, :, :k] = a.boxes[v, :n_f]
            self.area[r, :, :k] = a.area[v, :n_f]
        self.device = torch.device(device)
        self.frames = torch.from_numpy(frames).to(self.device)
        self.labels = torch.from_numpy(labels).to(self.device)

    @property
    def num_sequences(self) -> int:
        return len(self.names)

    def _clip_indices(self, rng: np.random.Generator, t: int, train: bool, min_pixels: int,
                      max_objects: int, frame_steps: Sequence[int], p_reverse: float):
        """(sequence, frame indices (T,), object slots) of one clip with an object on frame 0."""
        for _ in range(1000):
            r = int(rng.integers(self.num_sequences))
            step = int(rng.choice(frame_steps)) if train else 1
            span = (t - 1) * step + 1
            if span > self.num_frames:
                step, span = 1, t
                if span > self.num_frames:
                    raise ValueError(f"clips of {t} frames need scenes of >= {t} frames, "
                                     f"got {self.num_frames}")
            f0 = int(rng.integers(self.num_frames - span + 1))
            fr = np.arange(f0, f0 + span, step)
            if train and rng.random() < p_reverse:
                fr = fr[::-1].copy()
            objs = np.flatnonzero(self.area[r, fr[0]] >= min_pixels)
            if objs.size == 0:
                continue
            if objs.size > max_objects:
                objs = np.sort(rng.choice(objs, max_objects, replace=False))
            return r, fr, objs
        raise ValueError("no clip with an object on its first frame in 1000 draws")

    def sample(self, rng: np.random.Generator, batch: int, cfg: PretrainConfig,
               train: bool = True) -> Clips:
        """``batch`` random clips. ``train``: random frame step, reversal, flip, box noise and
        extra prompts as ``cfg`` says; else step 1, no augmentation, GT boxes, the box on
        frame 0 only (``prompts`` = GT boxes, ``prompted`` = frame 0)."""
        import torch

        t, s = cfg.clip_frames, self.size
        seq, fidx, clip, slots, flips = [], [], [], [], []
        for b in range(batch):
            r, fr, objs = self._clip_indices(rng, t, train, cfg.min_pixels, cfg.max_objects,
                                             cfg.frame_steps, cfg.p_reverse)
            seq.append(r)
            fidx.append(fr)
            clip += [b] * len(objs)
            slots.append((r, fr, objs))
            flips.append(bool(train and rng.random() < cfg.p_flip))
        boxes = np.concatenate([self.boxes[r][fr][:, objs].transpose(1, 0, 2)
                                for r, fr, objs in slots])  # (N, T, 4)
        area = np.concatenate([self.area[r][fr][:, objs].T for r, fr, objs in slots])  # (N, T)
        label = np.concatenate([objs + 1 for _, _, objs in slots]).astype(np.int16)  # (N,)
        clip_a = np.asarray(clip, np.int64)
        flip_o = np.asarray(flips, bool)[clip_a]
        boxes[flip_o] = np.stack([s - boxes[flip_o][..., 2], boxes[flip_o][..., 1],
                                  s - boxes[flip_o][..., 0], boxes[flip_o][..., 3]], -1)
        visible = area > 0
        prompted = np.zeros_like(visible)
        prompted[:, 0] = True
        prompts = boxes.copy()
        if train:
            n = len(clip)
            ok = area >= cfg.min_pixels
            ok[:, 0] = False
            u = rng.random(n)
            every = u < cfg.p_every_prompt
            second = (u >= cfg.p_every_prompt) & (u < cfg.p_every_prompt + cfg.p_second_prompt)
            prompted[every] |= ok[every]
            for i in np.flatnonzero(second):
                cand = np.flatnonzero(ok[i])
                if cand.size:
                    prompted[i, rng.choice(cand)] = True
            if cfg.box_noise > 0:  # SAM2's sample_box_points noise, bound scaled to S
                wh = np.concatenate([boxes[..., 2:] - boxes[..., :2]] * 2, -1)
                bound = cfg.box_noise_bound * s / 1024
                amp = np.minimum(wh * cfg.box_noise, bound)
                prompts = boxes + (2 * rng.random(boxes.shape) - 1) * amp
                prompts = np.clip(prompts, 0, s - 1).astype(np.float32)
        dev = self.device
        seq_t = torch.as_tensor(np.asarray(seq), device=dev)
        fidx_t = torch.as_tensor(np.stack(fidx), device=dev)
        frames = self.frames[seq_t[:, None], fidx_t]  # (B, T, 3, S, S)
        labels = self.labels[seq_t[:, None], fidx_t]  # (B, T, S, S)
        flip_t = torch.as_tensor(np.asarray(flips), device=dev)
        if bool(flip_t.any()):
            frames = torch.where(flip_t[:, None, None, None, None], frames.flip(-1), frames)
            labels = torch.where(flip_t[:, None, None, None], labels.flip(-1), labels)
        clip_t = torch.as_tensor(clip_a, device=dev)
        masks = labels[clip_t] == torch.as_tensor(label, device=dev)[:, None, None, None]
        return Clips(frames=frames, clip=clip_t, masks=masks,
                     boxes=torch.as_tensor(boxes, device=dev),
                     visible=torch.as_tensor(visible, device=dev),
                     prompts=torch.as_tensor(prompts, device=dev),
                     prompted=torch.as_tensor(prompted, device=dev))


