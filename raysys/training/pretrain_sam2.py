"""SAM2's own training and tracking steps for the base pre-training: prompts, SAM2's
losses, and the evaluation through the tracker's SAM2 steps
(:mod:`raysys.training.pretrain_base` says what and why)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raysys.training.pretrain_data import Clips, ScenePool

if TYPE_CHECKING:
    from raysys.training.pretrain_base import PretrainConfig

log = logging.getLogger(__name__)

# SAM2's object-pointer window reads ``num_frames``: the online tracker passes an open-ended
# stream (raysys.tracking.tracker._NUM_FRAMES), so training and evaluation do the same and
# the pointers' temporal encodings are normalised as at tracking time
STREAM_FRAMES = 1 << 30
_MEAN = (0.485, 0.456, 0.406)  # SAM2's ImageNet normalisation (as ViewSAM)
_STD = (0.229, 0.224, 0.225)

# ----------------------------------------------------------------------------- model


def load_base(checkpoint: str | os.PathLike | None = None, image_size: int | None = None,
              sam2_config: str | None = None, device="cpu"):
    """A ``SAM2Base`` at ``image_size`` from a SAM2 ``.pt`` (``"embedded"``, a file) or random
    init (``None``). A checkpoint that carries its YAML (``"yaml"``, as this module and
    the embedded base write) is built from it, else from ``sam2_config``."""
    from raysys.viewsam.base import build_sam2_base, resolve_sam2_checkpoint, sam2_yaml_text
    from raysys.viewsam.safe_load import read_sam2_file

    path = resolve_sam2_checkpoint(checkpoint)
    yaml_text = None
    if path is not None:  # weights_only=True: tensors and plain data, never code
        yaml_text = read_sam2_file(path).get("yaml")
    with tempfile.TemporaryDirectory(prefix="raysys-sam2-") as tmp:
        src = sam2_config
        if yaml_text:
            src = Path(tmp) / "source.yaml"
            src.write_text(yaml_text)
        text = sam2_yaml_text(str(src) if src is not None else None, image_size)
        f = Path(tmp) / "sam2.yaml"
        f.write_text(text)
        # sam2's loader logs through the root logger (logging.info), which would install a
        # root handler and print every raysys line twice: give root a handler meanwhile
        root = logging.getLogger()
        guard = logging.NullHandler() if not root.handlers else None
        if guard is not None:
            root.addHandler(guard)
        try:
            sam2 = build_sam2_base(f, path, device=device)
        finally:
            if guard is not None:
                root.removeHandler(guard)
    sam2.raysys_yaml = text  # what export_base writes next to the weights
    return sam2


def _normalise(frames):
    """uint8 ``(..., 3, S, S)`` -> SAM2's normalised float input."""
    import torch

    mean = torch.tensor(_MEAN, device=frames.device).view(3, 1, 1)
    std = torch.tensor(_STD, device=frames.device).view(3, 1, 1)
    return (frames.float() / 255.0 - mean) / std


def _point_inputs(boxes, prompted) -> dict:
    """SAM2 point inputs of ``N`` objects: a box as two points labelled 2 and 3 where
    ``prompted``, else two padding points (label -1 at (0, 0)), as ``decode_masks`` does."""
    import torch

    n = boxes.shape[0]
    coords = (boxes.float() * prompted[:, None].float()).reshape(n, 2, 2)
    labels = torch.tensor([2, 3], dtype=torch.int32, device=boxes.device).expand(n, 2)
    labels = torch.where(prompted[:, None], labels, torch.full_like(labels, -1))
    return {"point_coords": coords, "point_labels": labels}


def sam2_track_step(sam2, frame_idx: int, init: bool, feats: list, pos: list, sizes: list,
                    point_inputs: dict | None, output_dict: dict, num_frames: int):
    """One frame of SAM2's training-time tracking for ``N`` objects.

    ``SAM2Base._track_step`` (memory conditioning + prompt encoder + mask decoder) and
    ``_encode_memory_in_output`` (memory encoder), as ``SAM2Train.track_step`` calls them
    (without correction clicks). Returns ``(current_out, multimasks_high_res (N, M, S, S),
    ious (N, M), object_score_logits (N, 1))``; ``current_out`` goes into
    ``output_dict``.
    """
    current_out, sam_outputs, _, _ = sam2._track_step(
        frame_idx, init, feats, pos, sizes, point_inputs, None, output_dict, num_frames,
        False, None)
    _, high_multi, ious, low, high, obj_ptr, obj_logits = sam_outputs
    current_out["pred_masks"] = low
    current_out["pred_masks_high_res"] = high
    current_out["obj_ptr"] = obj_ptr
    sam2._encode_memory_in_output(feats, sizes, point_inputs, True, high, obj_logits,
                                  current_out)
    return current_out, high_multi, ious, obj_logits


def _focal(logits, target, alpha: float = 0.25, gamma: float = 2.0):
    import torch.nn.functional as F

    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    return (alpha * target + (1 - alpha) * (1 - target)) * loss


def sam2_frame_losses(masks, ious, obj_logits, target) -> dict:
    """SAM2's per-object losses on one frame (``MultiStepMultiMasksAndIous._update_losses``
    with ``supervise_all_iou=True``, ``iou_use_l1_loss=True``, plain BCE on the object
    score): ``masks`` ``(N, M, S, S)`` logits, ``ious`` ``(N, M)``, ``obj_logits`` ``(N, 1)``,
    ``target`` ``(N, S, S)`` bool. Returns per-object ``focal``, ``dice``, ``iou``, ``class``
    ``(N,)``: mask terms of the mask of lowest 20 * focal + dice, zero where the object is
    absent."""
    import torch
    import torch.nn.functional as F

    masks = masks.float()
    tgt = target[:, None].float().expand_as(masks)  # (N, M, S, S)
    focal = _focal(masks, tgt).flatten(2).mean(-1)  # (N, M)
    prob = masks.sigmoid().flatten(2)
    t2 = tgt.flatten(2)
    dice = 1 - (2 * (prob * t2).sum(-1) + 1) / (prob.sum(-1) + t2.sum(-1) + 1)  # (N, M)
    pred = masks.flatten(2) > 0
    gt = t2 > 0
    inter = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float().clamp(min=1)
    iou_l1 = F.l1_loss(ious.float(), inter / union, reduction="none")  # (N, M)
    present = target.flatten(1).any(1).float()  # (N,)
    best = torch.argmin(20.0 * focal + dice, dim=1, keepdim=True)
    cls = F.binary_cross_entropy_with_logits(obj_logits.float()[:, 0], present,
                                             reduction="none")
    return {"focal": focal.gather(1, best)[:, 0] * present,
            "dice": dice.gather(1, best)[:, 0] * present,
            "iou": iou_l1.mean(1) * present, "class": cls}


def backbone_features(sam2, frames):
    """Image features of ``(B, T, 3, S, S)`` uint8 frames in SAM2's flattened layout:
    lists over levels of ``(HW, B*T, C)`` features / position encodings, and sizes."""
    b, t = frames.shape[:2]
    out = sam2.forward_image(_normalise(frames.flatten(0, 1)))
    _, feats, pos, sizes = sam2._prepare_backbone_features(out)
    return feats, pos, sizes, t


def clip_losses(sam2, clips: Clips, cfg: PretrainConfig) -> dict:
    """SAM2's training step on a batch of clips: losses summed over frames, averaged over
    objects, and their weighted ``total`` (SAM2.1's weights, ``cfg.loss_*``)."""

    feats, pos, sizes, t = backbone_features(sam2, clips.frames)
    multimask = sam2.multimask_output_in_sam
    sam2.multimask_output_in_sam = False  # the tracker's single mask (see the module doc)
    try:
        bank: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        sums = {"focal": 0.0, "dice": 0.0, "iou": 0.0, "class": 0.0}
        for i in range(t):
            img = clips.clip * t + i
            pts = _point_inputs(clips.prompts[:, i], clips.prompted[:, i])
            out, masks, ious, obj = sam2_track_step(
                sam2, i, i == 0, [x[:, img] for x in feats], [x[:, img] for x in pos], sizes,
                pts, bank, STREAM_FRAMES)
            bank["cond_frame_outputs" if i == 0 else "non_cond_frame_outputs"][i] = out
            for k, v in sam2_frame_losses(masks, ious, obj, clips.masks[:, i]).items():
                sums[k] = sums[k] + v.sum()
    finally:
        sam2.multimask_output_in_sam = multimask
    n = max(clips.num_objects, 1)
    res = {k: v / n for k, v in sums.items()}
    res["total"] = (cfg.loss_focal * res["focal"] + cfg.loss_dice * res["dice"]
                    + cfg.loss_iou * res["iou"] + cfg.loss_class * res["class"])
    return res


# ----------------------------------------------------------------------------- evaluation


def track_clips(sam2, clips: Clips, prompted) -> tuple[Any, Any]:
    """Track the objects of ``clips`` as the project's tracker runs SAM2 (eval mode).

    Per frame, for all objects at once: SAM2's memory conditioning
    (``_prepare_memory_conditioned_features``; the first frame an initial conditioning
    frame), :func:`raysys.viewsam.base.decode_masks` (box where ``prompted``, else padding
    points; single mask) and ``_encode_new_memory`` on its mask - ``ViewSAM.track_frame``
    without BAR, with the same open-ended stream length.

    Args:
        prompted: ``(N, T)`` bool, frames where the object's GT box prompts SAM2.

    Returns:
        ``(masks (N, T, S, S) bool, scores (N, T))``: a mask is the decoder's mask where the
        object-presence logit is > 0 (empty otherwise), as the tracker keeps a track's mask.
    """
    import torch
    import torch.nn.functional as F

    from raysys.viewsam.base import decode_masks

    s = int(sam2.image_size)
    feats, pos, sizes, t = backbone_features(sam2, clips.frames)
    h, w = sizes[-1]
    bank: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    masks, scores = [], []
    for i in range(t):
        img = clips.clip * t + i
        top, top_pos = feats[-1][:, img], pos[-1][:, img]
        n = top.shape[1]
        high_res = [x[:, img].permute(1, 2, 0).reshape(n, x.shape[-1], *sz)
                    for x, sz in zip(feats[:-1], sizes[:-1], strict=True)] or None
        pix = sam2._prepare_memory_conditioned_features(
            frame_idx=i, is_init_cond_frame=i == 0, current_vision_feats=[top],
            current_vision_pos_embeds=[top_pos], feat_sizes=[(h, w)], output_dict=bank,
            num_frames=STREAM_FRAMES)
        dec = decode_masks(sam2, pix, high_res, clips.boxes[:, i].float(), prompted[:, i])
        high = F.interpolate(dec.masks, size=(s, s), mode="bilinear", align_corners=False)
        mem, mem_pos = sam2._encode_new_memory(
            current_vision_feats=[top], feat_sizes=[(h, w)], pred_masks_high_res=high,
            object_score_logits=dec.object_score_logits, is_mask_from_pts=True)
        key = "cond_frame_outputs" if i == 0 else "non_cond_frame_outputs"
        bank[key][i] = {"maskmem_features": mem, "maskmem_pos_enc": mem_pos,
                        "obj_ptr": dec.obj_ptr}
        score = dec.object_score_logits[:, 0].float()
        masks.append((high[:, 0] > 0) & (score > 0)[:, None, None])
        scores.append(score)
    return torch.stack(masks, 1), torch.stack(scores, 1)


def iou_summary(pred, target, visible, first: int = 0) -> dict:
    """Mask IoU over the visible object-frames from frame ``first`` on.

    Args:
        pred, target: ``(N, T, S, S)`` bool; visible: ``(N, T)`` bool (GT mask not empty).

    Returns:
        ``{"iou": mean IoU (None without a visible object-frame), "object_frames": count,
        "false_present": share of the not-visible object-frames with a non-empty predicted
        mask (None without one), "per_frame": mean IoU per frame index (None where none)}``.
    """
    inter = (pred & target).flatten(2).sum(-1).float()
    union = (pred | target).flatten(2).sum(-1).float().clamp(min=1)
    iou = inter / union  # (N, T)
    vis = visible.clone()
    vis[:, :first] = False
    absent = ~visible
    absent[:, :first] = False
    fp = pred.flatten(2).any(-1)
    per_frame = [float(iou[vis[:, i], i].mean()) if bool(vis[:, i].any()) else None
                 for i in range(iou.shape[1])]
    return {"iou": float(iou[vis].mean()) if bool(vis.any()) else None,
            "object_frames": int(vis.sum()),
            "false_present": float(fp[absent].float().mean()) if bool(absent.any()) else None,
            "per_frame": per_frame}


def evaluate_base(sam2, clips: Clips | Sequence[Clips], device=None) -> dict:
    """Memory-only and box-prompted mask IoU of a SAM2 base on clips (GT of unseen scenes).

    * ``memory_iou``: the GT box prompts frame 0 only, SAM2's memory carries the object on;
      IoU averaged over the visible object-frames after the first;
    * ``box_iou``: the GT box prompts every frame where the object is visible (memory is
      read as well, as in the tracker); IoU over every visible object-frame.

    Both through :func:`track_clips` (the tracker's SAM2 steps). ``*_false_present``: share
    of the object-frames where the object is not visible that still get a mask.
    """
    import torch

    batches = [clips] if isinstance(clips, Clips) else list(clips)
    was_training = sam2.training
    sam2.eval()
    acc: dict[str, list] = {"memory": [], "box": []}
    try:
        with torch.no_grad():
            for c in batches:
                if device is not None:
                    c = c.to(device)
                first = torch.zeros_like(c.visible)
                first[:, 0] = True
                for mode, prompted in (("memory", first), ("box", c.visible | first)):
                    pred, _ = track_clips(sam2, c, prompted)
                    acc[mode].append((pred.cpu(), c.masks.cpu(), c.visible.cpu()))
    finally:
        sam2.train(was_training)
    res: dict[str, Any] = {"clips": sum(int(c.frames.shape[0]) for c in batches),
                           "objects": sum(c.num_objects for c in batches)}
    for mode, first in (("memory", 1), ("box", 0)):
        pred, tgt, vis = (torch.cat([a[j] for a in acc[mode]]) for j in range(3))
        summ = iou_summary(pred, tgt, vis, first=first)
        res[f"{mode}_iou"] = None if summ["iou"] is None else round(summ["iou"], 4)
        res[f"{mode}_object_frames"] = summ["object_frames"]
        res[f"{mode}_false_present"] = None if summ["false_present"] is None else round(
            summ["false_present"], 4)
        res[f"{mode}_iou_per_frame"] = [None if x is None else round(x, 4)
                                        for x in summ["per_frame"]]
    return res


def eval_clip_batches(pool: ScenePool, cfg: PretrainConfig, clips: int, batch: int = 16,
                      seed: int = 0) -> list[Clips]:
    """``clips`` deterministic held-out clips (step 1, no augmentation, GT boxes)."""
    rng = np.random.default_rng(seed)
    out = []
    while clips > 0:
        k = min(batch, clips)
        out.append(pool.sample(rng, k, cfg, train=False))
        clips -= k
    return out


