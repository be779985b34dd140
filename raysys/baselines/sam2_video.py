"""SAM2's own video predictor behind a small interface: frames + box prompts -> tracks.

:class:`Sam2VideoTracker` builds ``sam2.sam2_video_predictor.SAM2VideoPredictor`` from a
SAM2 YAML (as ``sam2.build_sam.build_sam2_video_predictor`` does: same ``_target_`` and
post-processing overrides, hole filling off because the optional CUDA extension is not
built) and loads weights from a state dict, a SAM2 ``.pt`` checkpoint
(:meth:`Sam2VideoTracker.from_sam2_checkpoint`) or the SAM2 base of a trained ViewSAM
(:meth:`Sam2VideoTracker.from_viewsam_checkpoint`). With no weights it is random-init
(tests, speed).

:meth:`Sam2VideoTracker.track` takes frames (paths or ``(H, W, 3)`` uint8 RGB arrays, all
of one size) and prompts ``{obj_id: (frame_index, (x1, y1, x2, y2))}`` in frame pixels.
Frames are loaded here, exactly as ``sam2.utils.misc.load_video_frames`` does it (resize to
the model's square input, ImageNet normalisation), so arrays work and file names need not
be ``<int>.jpg``. Objects prompted on the same frame share one inference state and one
propagation (SAM2 runs objects one by one). Objects prompted on different frames get
separate propagations, so that no object is tracked before its prompt (SAM2 would
otherwise "track" it backwards from its future prompt frame); these run in lockstep over
the frames, handing SAM2's cached image features from one state to the next, so each frame
is encoded once.
Propagation is forward only, and an object whose mask becomes empty is dropped from there
on (``stop_on_empty``).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["VideoTracks", "Sam2VideoTracker", "mask_box"]

# what sam2.build_sam.build_sam2_video_predictor overrides (apply_postprocessing=True),
# except fill_hole_area: hole filling needs sam2's optional CUDA extension
_PREDICTOR_OVERRIDES = {
    "sam_mask_decoder_extra_args": {"dynamic_multimask_via_stability": True,
                                    "dynamic_multimask_stability_delta": 0.05,
                                    "dynamic_multimask_stability_thresh": 0.98},
    "binarize_mask_from_pts_for_mem_enc": True,
    "fill_hole_area": 0,
}
_IMG_MEAN = (0.485, 0.456, 0.406)  # sam2.utils.misc.load_video_frames defaults
_IMG_STD = (0.229, 0.224, 0.225)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight ``(x1, y1, x2, y2)`` box of a boolean (H, W) mask (pixel edges), None if empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=np.float64)


@dataclass
class VideoTracks:
    """Output of :meth:`Sam2VideoTracker.track`.

    ``boxes[obj_id][frame_index]`` is ``(x1, y1, x2, y2)`` in frame pixels, for the frames
    from the object's prompt until its mask first becomes empty (or the video ends);
    ``masks`` holds the (H, W) bool masks of the same frames when asked for.
    """

    boxes: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    masks: dict[int, dict[int, np.ndarray]] | None = None
    frames_processed: int = 0  # (frame, propagation) steps SAM2 ran
    seconds: float = 0.0  # propagation wall time (frame loading excluded)
    load_seconds: float = 0.0  # frame loading and resizing


def _sam2_config(yaml: str | os.PathLike):
    """``(config, source)`` from YAML text or a path/name (see ``resolve_sam2_config``),
    its ``_target_`` values checked (:mod:`raysys.viewsam.sam2_yaml`)."""
    from raysys.viewsam.sam2_yaml import load_sam2_yaml, read_sam2_yaml

    text = str(yaml)
    if "\n" in text and "model" in text:  # YAML text, e.g. a checkpoint's build_spec
        return load_sam2_yaml(text, "(YAML text)"), "(YAML text)"
    from raysys.viewsam.base import resolve_sam2_config

    path = resolve_sam2_config(yaml)
    return read_sam2_yaml(path), str(path)


class Sam2VideoTracker:
    """SAM2's video predictor for box-prompted multi-object tracking.

    Args:
        sam2_yaml: SAM2 YAML text, a local YAML file, a ``sam2`` package config name, or
            ``"tiny"`` (the embedded small config; see ``raysys.viewsam.base``).
        state_dict: SAM2 weights (``SAM2Base`` keys); None = random init.
        device: where the model runs (the entrypoint chooses).
    """

    def __init__(self, sam2_yaml: str | os.PathLike = "tiny", state_dict: dict | None = None,
                 device: str = "cpu"):
        from raysys.viewsam.safe_load import load_state
        from raysys.viewsam.sam2_yaml import instantiate_sam2

        cfg, source = _sam2_config(sam2_yaml)
        model = instantiate_sam2(cfg, source, "sam2.sam2_video_predictor.SAM2VideoPredictor",
                                 _PREDICTOR_OVERRIDES)
        self.weights = "random"
        if state_dict is not None:
            load_state(model, state_dict, "SAM2 weights",
                       hint="pass the YAML the checkpoint was made with (--sam2-config)")
            self.weights = "loaded"
        self.predictor = model.to(device).eval()
        self.device = device

    @classmethod
    def from_sam2_checkpoint(cls, sam2_yaml: str | os.PathLike, checkpoint: str | os.PathLike,
                             device: str = "cpu") -> Sam2VideoTracker:
        """From an official SAM2 ``.pt`` (``{"model": state_dict}``, read with
        ``weights_only=True``) and its YAML."""
        from raysys.viewsam.safe_load import read_sam2_file

        ckpt = Path(checkpoint)
        if not ckpt.exists():
            raise FileNotFoundError(
                f"SAM2 checkpoint {ckpt} not found: pass a local SAM2 .pt file with its YAML "
                "(e.g. sam2.1_hiera_tiny.pt + configs/sam2.1/sam2.1_hiera_t.yaml, downloaded "
                "from github.com/facebookresearch/sam2 on a machine with internet), or a "
                "`raysys train` output folder as --model")
        tracker = cls(sam2_yaml, read_sam2_file(ckpt)["model"], device=device)
        tracker.weights = f"sam2:{ckpt}"
        return tracker

    @classmethod
    def from_viewsam_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", *,
                                allow_partial: bool = False) -> Sam2VideoTracker:
        """From the SAM2 base of a ViewSAM checkpoint (a ``raysys train`` output folder),
        loaded strictly unless ``allow_partial``
        (:func:`raysys.viewsam.checkpoint.load_viewsam_checkpoint`)."""
        from raysys.viewsam.checkpoint import checkpoint_dir, load_viewsam_checkpoint

        model = load_viewsam_checkpoint(path, allow_partial=allow_partial).model
        tracker = cls(model.build_spec["sam2_yaml"], model.sam2.state_dict(), device=device)
        tracker.weights = f"viewsam:{checkpoint_dir(path)}"
        return tracker

    @property
    def image_size(self) -> int:
        return int(self.predictor.image_size)

    def load_frames(self, frames: Sequence[str | os.PathLike | np.ndarray]):
        """``(T, 3, S, S)`` normalised float tensor and the original (H, W)."""
        import torch
        from PIL import Image

        s = self.image_size
        out = torch.zeros(len(frames), 3, s, s, dtype=torch.float32)
        hw = None
        for i, fr in enumerate(frames):
            if isinstance(fr, np.ndarray):
                im = Image.fromarray(np.ascontiguousarray(fr[..., :3]).astype(np.uint8))
            else:
                with Image.open(fr) as f:
                    im = f.convert("RGB")
            if hw is None:
                hw = (im.height, im.width)
            elif hw != (im.height, im.width):
                raise ValueError(f"frame {i} is {im.width}x{im.height}, frame 0 "
                                 f"{hw[1]}x{hw[0]}: all frames of a video must have one size")
            arr = np.asarray(im.convert("RGB").resize((s, s)), dtype=np.float64) / 255.0
            out[i] = torch.from_numpy(arr).permute(2, 0, 1)
        mean = torch.tensor(_IMG_MEAN, dtype=torch.float32)[:, None, None]
        std = torch.tensor(_IMG_STD, dtype=torch.float32)[:, None, None]
        return (out - mean) / std, hw

    def new_state(self, images, hw: tuple[int, int]) -> dict:
        """An inference state over loaded frames: ``SAM2VideoPredictor.init_state`` (sam2
        1.1.0) without its loader. Images stay on the CPU (``offload_video_to_cpu``)."""
        import torch

        dev = self.predictor.device
        st = {"images": images, "num_frames": len(images), "offload_video_to_cpu": True,
              "offload_state_to_cpu": False, "video_height": hw[0], "video_width": hw[1],
              "device": dev, "storage_device": dev, "point_inputs_per_obj": {},
              "mask_inputs_per_obj": {}, "cached_features": {}, "constants": {},
              "output_dict_per_obj": {}, "temp_output_dict_per_obj": {},
              "frames_tracked_per_obj": {}}
        from collections import OrderedDict

        st.update(obj_id_to_idx=OrderedDict(), obj_idx_to_id=OrderedDict(), obj_ids=[])
        assert isinstance(images, torch.Tensor) and images.dim() == 4, "images (T, 3, S, S)"
        return st

    def track(self, frames: Sequence[str | os.PathLike | np.ndarray],
              prompts: dict[int, tuple[int, Sequence[float]]], *, stop_on_empty: bool = True,
              return_masks: bool = False, progress: bool = False) -> VideoTracks:
        """Propagate box prompts forward through a video.

        Args:
            frames: T frame paths or (H, W, 3) uint8 RGB arrays, in time order.
            prompts: ``{obj_id: (frame_index, (x1, y1, x2, y2))}``, 0-based frame index,
                box in frame pixels.
            stop_on_empty: drop an object from its first empty mask on.
            return_masks: also return the masks.
            progress: let SAM2 show its progress bars.

        Returns:
            :class:`VideoTracks`.
        """
        import torch

        t = len(frames)
        for oid, (fi, box) in prompts.items():
            if not 0 <= int(fi) < t or len(box) != 4:
                raise ValueError(f"prompt of object {oid}: need (frame_index in [0, {t}), "
                                 f"(x1, y1, x2, y2)), got ({fi}, {box})")
        out = VideoTracks(masks={} if return_masks else None)
        if not prompts:
            return out
        t0 = time.perf_counter()
        images, hw = self.load_frames(frames)
        out.load_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        groups: dict[int, list[int]] = {}
        for oid, (fi, _) in sorted(prompts.items()):
            groups.setdefault(int(fi), []).append(oid)
        quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(
            io.StringIO())  # SAM2's tqdm bars write to stderr
        with torch.inference_mode(), quiet:
            self._propagate_groups(images, hw, groups, prompts, stop_on_empty, out)
        out.seconds = time.perf_counter() - t0
        return out

    def _propagate_groups(self, images, hw, groups: dict[int, list[int]], prompts: dict,
                          stop_on_empty: bool, out: VideoTracks) -> None:
        """One SAM2 propagation per prompt frame, run in lockstep over the frames so that
        each frame is encoded once: the image features SAM2 caches in one inference state
        (``cached_features``, the most recent frame) are handed to the next state."""
        p = self.predictor
        runs = []  # [state, generator, active object ids]
        shared: dict = {}
        for f in range(len(images)):
            if f in groups:
                state = self.new_state(images, hw)
                state["cached_features"] = shared
                for oid in groups[f]:
                    p.add_new_points_or_box(state, frame_idx=f, obj_id=int(oid),
                                            box=np.asarray(prompts[oid][1], np.float32))
                    out.boxes[int(oid)] = {}
                    if out.masks is not None:
                        out.masks[int(oid)] = {}
                shared = state["cached_features"]  # the prompts encoded frame f
                runs.append([state, p.propagate_in_video(state, start_frame_idx=f),
                             set(groups[f])])
            for run in runs:
                if not run[2]:
                    continue
                state, gen, active = run
                if f in shared:  # add_new_points_or_box may have cached another frame
                    state["cached_features"] = shared
                try:
                    fi, obj_ids, masks = next(gen)  # masks (N, 1, H, W) logits
                except StopIteration:
                    active.clear()
                    continue
                assert fi == f, (fi, f)
                shared = state["cached_features"]
                out.frames_processed += 1
                m = (masks[:, 0] > 0.0).cpu().numpy()
                for k, oid in enumerate(obj_ids):
                    if oid not in active:
                        continue
                    b = mask_box(m[k])
                    if b is None:
                        if stop_on_empty:
                            active.discard(oid)
                        continue
                    out.boxes[oid][f] = b
                    if out.masks is not None:
                        out.masks[oid][f] = m[k]
                if not active:
                    gen.close()
