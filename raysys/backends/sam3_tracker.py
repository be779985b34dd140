"""SAM3 as the concept tracker of Stage 1 (ViewSAM paper §3.2).

``track``: the category name is the text prompt of one SAM3 video session per view (on the
first frame); ``propagate_in_video`` runs SAM3's detector + tracker forward over the video,
and every object id becomes a tracklet. ``repropagate``: the seed mask becomes a box prompt
(its tight box as SAM's two box-corner points) plus positive points inside it (its most
interior pixels), added as a new object on the seed frame; SAM3's tracker then follows only
that object forward or backward.

The model is ``sam3==0.1.4`` (``build_sam3_video_model``), built from a local ``sam3.pt``
(nothing is downloaded) or with random weights (``random_init=True``, smoke checks only).
sam3 hard-codes CUDA in its constructors and video loaders, so this backend needs a CUDA
GPU; use the ``classical`` tracker on CPU.

Behaviour of sam3 worth knowing (checked in its source, 0.1.4):

* its video model holds back outputs for ``hotstart_delay`` (15) frames: frame ``t`` is
  yielded after frame ``t + 15`` ran, and all of them at the end. This backend consumes
  the whole generator, so the lag changes nothing but the order of arrival;
* a new detection becomes an object when its probability is at least ``new_det_thresh``
  (0.7) and it enters matching/NMS at ``score_threshold_detection`` (0.5): the
  ``score_threshold`` option sets both (random weights score ~0.26, so smoke runs lower
  it). Its mask NMS (``det_nms_thresh``) compares every pair of passing detections at full
  mask size: with a threshold that lets all 200 queries through it needs tens of GB;
* point prompts on a session that never ran a full propagation hit an assertion (its
  per-frame output cache is empty): ``repropagate`` fills that cache with empty entries;
* the tracker's constructor enters a bf16 autocast for good (thread-wide); the backend
  leaves it again and wraps its own calls in bf16 autocast instead, so models built
  after it (ReID) keep their precision. sam3 cannot run without it (it casts features
  to bf16 itself);
* scores: per frame, the tracker's object probability where sam3 reports one, else the
  detection probability of the object.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from raysys.backends.checkpoints import require_file
from raysys.backends.mask_prompts import prompt_points, tight_box
from raysys.io.video import VideoFrames
from raysys.types import MaskRLE, Tracklet

__all__ = ["Sam3ConceptTracker"]

Direction = Literal["forward", "backward"]

BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
NEEDS_GPU = ("the sam3 backend needs a CUDA GPU (sam3 hard-codes CUDA); use --tracker "
             "classical on CPU")
HOW_TO_GET_CKPT = ("download sam3.pt from the facebook/sam3 Hugging Face repository on a "
                   "machine with internet (after accepting its licence there), copy it here "
                   "and pass it with --tracker-checkpoint PATH "
                   "(tracker_options={'checkpoint': PATH})")
HOW_TO_GET_BPE = (f"{BPE_NAME} is not in the sam3 wheel: take it from the open_clip_torch "
                  f"wheel (open_clip/{BPE_NAME}) and pass tracker_options={{'bpe_path': PATH}}"
                  ", or install open_clip_torch")
OBJ_ID = 1  # object id of a re-prompted object (each re-prompt starts from a reset session)


def _find_bpe() -> str | None:
    """The BPE vocabulary of an installed open_clip or sam3 package (found, not imported)."""
    for pkg, rel in (("open_clip", BPE_NAME), ("sam3", f"../assets/{BPE_NAME}")):
        spec = importlib.util.find_spec(pkg)
        if spec is not None and spec.origin:
            p = (Path(spec.origin).parent / rel).resolve()
            if p.is_file():
                return str(p)
    return None


class Sam3ConceptTracker:
    """SAM3 concept tracker (``track`` / ``repropagate`` of :class:`ConceptTracker`).

    Args:
        checkpoint: local ``sam3.pt`` (facebook/sam3 on Hugging Face); required unless
            ``random_init``.
        bpe_path: ``bpe_simple_vocab_16e6.txt.gz``; default: the one of an installed
            open_clip (or sam3 assets) package.
        device: a CUDA device (``"cuda"``, ``"cuda:1"``); CPU raises.
        random_init: build the architecture with random weights (seeded by ``seed``; the
            text encoder parameters sam3 leaves uninitialised are filled too). Smoke
            checks and benchmarks only: it detects nothing meaningful.
        score_threshold: detection probability for a new object and for entering
            matching (sam3's ``new_det_thresh`` and ``score_threshold_detection``, by
            default 0.7 and 0.5); ``None`` keeps sam3's values.
        max_frames: sessions hold at most this many frames (GPU memory: ~6 MB a frame at
            1008²); longer videos are tracked in consecutive windows whose tracklets are
            separate, and re-propagation covers at most this many frames. ``None``: the
            whole video in one session.
        max_objects: most objects tracked at once (sam3's ``max_num_objects``).
        hotstart_delay: sam3's hot-start window in frames (15); 0 turns it off.
        min_length: shortest tracklet kept by ``track``.
        n_points: positive points of a re-prompt (besides the box corners).
        reprop_max_miss: stop a re-propagation after this many frames in a row without
            the object; ``None`` runs to the end of the window.
        cache_videos: sessions (loaded frames) kept for reuse across calls.
        seed: seed of ``random_init``.
    """

    def __init__(self, checkpoint: str | None = None, bpe_path: str | None = None,
                 device: str = "cuda", random_init: bool = False,
                 score_threshold: float | None = None, max_frames: int | None = None,
                 max_objects: int | None = None, hotstart_delay: int | None = None,
                 min_length: int = 5, n_points: int = 5, reprop_max_miss: int | None = None,
                 cache_videos: int = 3, seed: int = 0) -> None:
        if not str(device).startswith("cuda"):
            raise RuntimeError(f"{NEEDS_GPU} (got device={device!r})")
        if random_init and checkpoint is not None:
            raise ValueError("give a checkpoint or random_init=True, not both")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
        ckpt = None if random_init else require_file(
            checkpoint, "SAM3 checkpoint (sam3.pt)", HOW_TO_GET_CKPT)
        bpe = require_file(bpe_path or _find_bpe(), f"SAM3 BPE vocabulary ({BPE_NAME})",
                           HOW_TO_GET_BPE)
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"{NEEDS_GPU} (torch sees no CUDA device)")
        try:
            from sam3.model_builder import build_sam3_video_model
        except ImportError as e:
            raise ImportError(
                f"the sam3 backend needs sam3==0.1.4 and its imports (triton, einops, timm, "
                f"iopath, pycocotools, ftfy, psutil): {e}") from e
        dev = torch.device(device)
        if dev.index is not None:
            torch.cuda.set_device(dev)  # sam3 puts some caches on the current device
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            model = build_sam3_video_model(
                checkpoint_path=None if ckpt is None else str(ckpt), load_from_HF=False,
                bpe_path=str(bpe), device="cpu")
        if random_init:
            _fill_uninitialised(model, seed)
        model = model.to(dev).eval()
        _leave_global_autocast(model)
        self.load_report = {"checkpoint": None if ckpt is None else str(ckpt),
                            "bpe": str(bpe), "random_init": random_init}
        self._setup(model, dev, score_threshold=score_threshold, max_frames=max_frames,
                    max_objects=max_objects, hotstart_delay=hotstart_delay,
                    min_length=min_length, n_points=n_points, reprop_max_miss=reprop_max_miss,
                    cache_videos=cache_videos)

    @classmethod
    def from_model(cls, model: Any, device: Any = "cuda", **options) -> Sam3ConceptTracker:
        """Wrap a built sam3 video model (from ``build_sam3_video_model``), or any object with
        its session API (tests). ``options``: the constructor's ``score_threshold`` ...
        ``cache_videos`` (checkpoint, bpe_path, random_init and seed concern building)."""
        self = cls.__new__(cls)
        self.load_report = {"checkpoint": None, "bpe": None, "random_init": None}
        self._setup(model, device, **options)
        return self

    def _setup(self, model, device, score_threshold=None, max_frames=None, max_objects=None,
               hotstart_delay=None, min_length=5, n_points=5, reprop_max_miss=None,
               cache_videos=3) -> None:
        self.model, self.device = model, device
        if score_threshold is not None:
            model.score_threshold_detection = float(score_threshold)
            model.new_det_thresh = float(score_threshold)
        if max_objects is not None:
            model.max_num_objects = int(max_objects)
        if hotstart_delay is not None:
            model.hotstart_delay = int(hotstart_delay)
            for name in ("hotstart_unmatch_thresh", "hotstart_dup_thresh"):
                if hasattr(model, name):  # sam3 asserts these are <= the delay
                    setattr(model, name, min(getattr(model, name), int(hotstart_delay)))
        self.max_frames, self.min_length, self.n_points = max_frames, min_length, n_points
        self.reprop_max_miss = reprop_max_miss
        self._cache: OrderedDict[tuple, dict] = OrderedDict()
        self._cache_size = max(1, int(cache_videos))

    # -- sessions ------------------------------------------------------------------------

    def _context(self, autocast: bool = True):
        """inference mode + bf16 autocast around every model call (generators included).

        sam3 needs the autocast: it casts some features to bf16 itself."""
        import torch

        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        dev_type = getattr(self.device, "type", str(self.device).split(":")[0])
        if autocast:
            stack.enter_context(torch.autocast(device_type=dev_type, dtype=torch.bfloat16))
        return stack

    def _session(self, video: VideoFrames, start: int, stop: int) -> dict:
        """The sam3 inference state of frames ``start:stop`` of ``video`` (cached)."""
        from PIL import Image

        fn = video.frame_numbers
        key = (video.scene, video.view, len(video), int(fn[start]), int(fn[stop - 1]))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        while len(self._cache) >= self._cache_size:
            self._cache.popitem(last=False)
        frames = [Image.fromarray(np.asarray(video[i])) for i in range(start, stop)]
        with self._context(autocast=False):  # loading only (CPU autocast rejects its fp16)
            state = self.model.init_state(resource_path=frames)
        self._cache[key] = state
        return state

    def close(self) -> None:
        """Drop the cached sessions (and their GPU memory)."""
        self._cache.clear()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _windows(self, n: int) -> list[tuple[int, int]]:
        w = self.max_frames or n
        return [(s, min(n, s + w)) for s in range(0, n, w)]

    # -- ConceptTracker ------------------------------------------------------------------

    def track(self, video: VideoFrames, category: str) -> list[Tracklet]:
        """Every ``category`` object of one view (text prompt on the first frame).

        Returns:
            Tracklets with local ids 1..n in order of appearance; frames 1-based, boxes the
            tight xywh pixel boxes of the masks, masks as RLE.
        """
        if not isinstance(category, str) or not category.strip():
            raise ValueError(f"category must be a non-empty string, got {category!r}")
        rows: list[dict[int, tuple]] = []  # per window: obj id -> {frame: (box, score, rle)}
        for start, stop in self._windows(len(video)):
            state = self._session(video, start, stop)
            objs: dict[int, dict[int, tuple]] = {}
            with self._context():
                self.model.add_prompt(state, frame_idx=0, text_str=category)
                for t, out in self.model.propagate_in_video(
                        state, start_frame_idx=0, max_frame_num_to_track=stop - start,
                        reverse=False):
                    frame = int(video.frame_numbers[start + t])
                    for oid, row in self._rows(state, t, out, logits=False).items():
                        objs.setdefault(oid, {})[frame] = row
            rows.append(objs)
        out: list[Tracklet] = []
        tracks = [per_frame for objs in rows for _, per_frame in sorted(objs.items())]
        tracks.sort(key=lambda d: min(d))
        for per_frame in tracks:
            if len(per_frame) < self.min_length:
                continue
            out.append(_tracklet(video, len(out) + 1, category, per_frame))
        return out

    def repropagate(self, video: VideoFrames, seed_frame: int, seed_mask: MaskRLE,
                    direction: Direction, category: str = "person") -> Tracklet:
        """Follow the object of ``seed_mask`` from ``seed_frame`` (included) on.

        Returns:
            A tracklet (local id 0) with the seed frame (the seed mask, score 1) and every
            frame where SAM3 still finds the object, in increasing frame order.
        """
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        mask = seed_mask.decode()
        if not mask.any():
            raise ValueError("seed mask is empty")
        k, n = video.index_of(seed_frame), len(video)
        if mask.shape != tuple(np.asarray(video[k]).shape[:2]):
            raise ValueError(f"seed mask is {mask.shape}, frames are "
                             f"{tuple(np.asarray(video[k]).shape[:2])}")
        w = self.max_frames or n
        start, stop = (k, min(n, k + w)) if direction == "forward" else (max(0, k - w + 1), k + 1)
        if self.max_frames is None:
            start, stop = 0, n  # one session per video: shared with track() via the cache
        state = self._session(video, start, stop)
        points, labels = prompt_points(mask, self.n_points)
        per_frame: dict[int, tuple] = {int(seed_frame): (tight_box(mask), 1.0, seed_mask)}
        miss = 0
        with self._context():
            self.model.reset_state(state)
            # sam3 builds point-prompt outputs on top of the cached outputs of a full
            # propagation; a fresh session has none: start from empty ones
            state["cached_frame_outputs"] = {t: {} for t in range(state["num_frames"])}
            self.model.add_prompt(state, frame_idx=k - start, points=points,
                                  point_labels=labels, obj_id=OBJ_ID, rel_coordinates=True)
            for t, out in self.model.propagate_in_video(
                    state, start_frame_idx=k - start, max_frame_num_to_track=stop - start,
                    reverse=direction == "backward"):
                frame = int(video.frame_numbers[start + t])
                row = self._rows(state, t, out, logits=True).get(OBJ_ID)
                if row is None:
                    miss += 1
                    if self.reprop_max_miss is not None and miss > self.reprop_max_miss:
                        break
                    continue
                miss = 0
                if frame != seed_frame:
                    per_frame[frame] = row
        return _tracklet(video, 0, category, per_frame)

    def _rows(self, state: dict, t: int, out: dict | None, logits: bool) -> dict[int, tuple]:
        """{obj id: (box xywh, score, MaskRLE)} of one yielded frame."""
        if out is None:
            return {}
        ids = np.asarray(out["out_obj_ids"]).reshape(-1)
        probs = np.asarray(out["out_probs"], dtype=np.float64).reshape(-1)
        masks = np.asarray(out["out_binary_masks"])
        assert masks.shape[0] == ids.size, f"{ids.size} ids but masks {masks.shape}"
        frame_scores = (state.get("tracker_metadata", {})
                        .get("obj_id_to_tracker_score_frame_wise", {}).get(t, {}))
        rows = {}
        for j, oid in enumerate(ids.tolist()):
            m = masks[j].astype(bool)
            if not m.any():
                continue
            s = frame_scores.get(oid)
            if s is None:
                s = probs[j]
            elif logits:  # sam3's partial propagation stores object-score logits
                s = 0.5 * (1.0 + np.tanh(0.5 * float(s)))  # sigmoid, without overflow
            rows[int(oid)] = (tight_box(m), float(np.clip(s, 0.0, 1.0)), MaskRLE.encode(m))
        return rows


def _tracklet(video: VideoFrames, local_id: int, category: str, per_frame: dict) -> Tracklet:
    frames = sorted(per_frame)
    return Tracklet(video.scene, video.view, local_id, category, np.array(frames, np.int64),
                    np.array([per_frame[f][0] for f in frames], float).reshape(-1, 4),
                    np.array([per_frame[f][1] for f in frames], float),
                    tuple(per_frame[f][2] for f in frames))


def _fill_uninitialised(model, seed: int) -> None:
    """Fill the parameters sam3 creates with ``torch.empty`` and never initialises without a
    checkpoint (the text encoder's positional embedding and projection; anything else
    non-finite), deterministically from ``seed`` (CLIP's init scales)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            pe = getattr(mod, "positional_embedding", None)
            if isinstance(pe, torch.nn.Parameter):
                pe.copy_(torch.randn(pe.shape, generator=g) * 0.01)
            tp = getattr(mod, "text_projection", None)
            if isinstance(tp, torch.nn.Parameter):
                tp.copy_(torch.randn(tp.shape, generator=g) * tp.shape[0] ** -0.5)
        for p in model.parameters():
            if p.is_floating_point() and not torch.isfinite(p).all():
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def _leave_global_autocast(model) -> None:
    """sam3's tracker enters a bf16 autocast in its constructor and never leaves it (for the
    whole thread); leave it so later models keep their precision (our calls re-enter it)."""
    ctx = getattr(getattr(model, "tracker", None), "bf16_context", None)
    if ctx is not None:
        ctx.__exit__(None, None, None)
