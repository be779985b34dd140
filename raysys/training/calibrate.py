"""Decision thresholds of the tracker, calibrated on the run's own clips after training.

The tracker opens a track from a Candidate Generator proposal whose objectness and
referring probability pass two thresholds. A model trained for minutes on a CPU is far from
calibrated (its referring probabilities may never reach 0.5), so after training the
thresholds are chosen on the run's own clips, those left out of training where the run
capped its samples (``TrainConfig.max_samples``; on the clips it trained on, its referring
scores are over-confident): the objectness threshold that best
separates proposals matching any target box (IoU >= the CG's ``pos_iou``) from the rest
(max F1), then, among proposals above it, the referring threshold that best separates those
matching a *referred* target. The clips carry the run's own supervision (Stage 1 pseudo
labels for a weak run), so weak supervision holds: no GT is read.
"""

from __future__ import annotations

import numpy as np

__all__ = ["best_f1_threshold", "calibrate_thresholds", "calibrate_payload"]


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold ``t`` maximising F1 of ``scores >= t`` against ``labels``, and that F1.

    With no positive label, returns ``(1.0, 0.0)`` (nothing passes)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if labels.sum() == 0 or scores.size == 0:
        return 1.0, 0.0
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    f1 = 2 * tp / (tp + fp + y.sum())
    last = np.r_[s[1:] != s[:-1], True]  # cut only between distinct scores
    i = int(np.argmax(np.where(last, f1, -1.0)))
    return float(s[i]), float(f1[i])


def calibrate_thresholds(model, clips: list[dict], pos_iou: float | None = None) -> dict:
    """Objectness and referring thresholds from decoded training clips.

    Args:
        model: the trained ViewSAM (eval mode is set here).
        clips: :func:`raysys.training.data.load_clip` outputs (numpy, one sample each).
        pos_iou: IoU with a target box at which a proposal counts as that object (default:
            the Candidate Generator's ``pos_iou``).
    """
    import torch

    from raysys.training.data import collate
    from raysys.viewsam.candidate_generator import pairwise_iou

    if model.candidate_generator is None:
        return {}
    pos_iou = model.cfg.candidate_generator.pos_iou if pos_iou is None else pos_iou
    model.eval()
    obj, ref, is_obj, is_ref = [], [], [], []
    with torch.no_grad():
        for c in clips:
            frames, texts, tg, vids = collate({k: v[None] for k, v in c.items()})
            ce = model.encode_clip(frames, model.tokenize(texts), vids, crop_frames=tg.crop_frames)
            _, v, t, _, h, w = frames.shape
            s = model.image_size
            scale = torch.tensor([s / w, s / h, s / w, s / h])
            boxes = (tg.boxes[0] * scale).reshape(v * t, -1, 4)
            vis = tg.visible[0].reshape(v * t, -1)
            if tg.dense_boxes is not None:  # every labelled object, not only the M
                dense = (tg.dense_boxes[0] * scale).reshape(v * t, -1, 4)
                dvis = tg.dense_visible[0].reshape(v * t, -1)
            else:
                dense, dvis = boxes, vis
            for n in range(v * t):
                props = ce.cand.boxes[n]
                tb = boxes[n][vis[n]]
                rf = tg.referred[0][vis[n]]
                none = torch.zeros(props.shape[0], dtype=torch.bool)
                db = dense[n][dvis[n]]
                any_obj = pairwise_iou(props, db).max(1).values >= pos_iou if db.shape[0] \
                    else none
                any_ref = (pairwise_iou(props, tb) * rf[None].float()).max(1).values >= \
                    pos_iou if tb.shape[0] else none
                obj.append(ce.cand.objectness[n].numpy())
                ref.append(ce.cand.refer_logits[n].sigmoid().numpy())
                is_obj.append(any_obj.numpy())
                is_ref.append(any_ref.numpy())
    obj, ref = np.concatenate(obj), np.concatenate(ref)
    is_obj, is_ref = np.concatenate(is_obj), np.concatenate(is_ref)
    t_obj, f_obj = best_f1_threshold(obj, is_obj)
    keep = obj >= t_obj
    t_ref, f_ref = best_f1_threshold(ref[keep], is_ref[keep])
    return {"objectness_threshold": round(t_obj, 4), "refer_threshold": round(t_ref, 4),
            "f1_objectness": round(f_obj, 4), "f1_refer": round(f_ref, 4),
            "clips": len(clips), "proposals": int(obj.size),
            "positives": int(is_obj.sum()), "referred_positives": int(is_ref.sum()),
            "pos_iou": pos_iou}


def calibrate_payload(payload: dict, source, spec, samples, clips: int = 32,
               held_out: bool = False) -> dict:
    """Tracker thresholds on ``clips`` of ``samples`` (:mod:`raysys.training.calibrate`):
    the run's own supervision (pseudo labels for a weak run), on clips it did not train on
    where ``held_out``.

    Runs in the driver (which, for a weak run, is under the GT guard like the workers)."""
    import torch

    from raysys.training.data import load_clip
    from raysys.viewsam.checkpoint import model_from_payload

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = model_from_payload(payload, name="final checkpoint").model
        decoded = [load_clip(source, s, spec) for s in samples[:clips]]
        return {**calibrate_thresholds(model, decoded), "held_out": held_out}
    finally:
        torch.set_num_threads(threads)
