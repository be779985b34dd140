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

__all__ = ["best_f1_threshold", "calibration_scores", "thresholds_from_scores",
           "calibrate_thresholds", "calibrate_payload"]


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


def calibration_scores(model, clips: list[dict], pos_iou: float | None = None
                       ) -> dict[str, np.ndarray] | None:
    """Every proposal's objectness and referring probability on decoded clips, and whether
    it matches any target box / a referred one (IoU >= ``pos_iou``, default the Candidate
    Generator's): arrays ``obj``, ``ref``, ``is_obj``, ``is_ref`` in clip order. None for a
    model without a Candidate Generator."""
    import torch

    from raysys.training.data import collate
    from raysys.viewsam.candidate_generator import pairwise_iou

    if model.candidate_generator is None:
        return None
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
    cat = (np.concatenate(x) if x else np.zeros(0) for x in (obj, ref, is_obj, is_ref))
    return dict(zip(("obj", "ref", "is_obj", "is_ref"), cat, strict=True))


def thresholds_from_scores(scores: dict[str, np.ndarray], clips: int, pos_iou: float
                           ) -> dict:
    """The objectness threshold of best F1, then among proposals above it the referring
    threshold of best F1 (the module doc), from :func:`calibration_scores`."""
    obj, ref = scores["obj"], scores["ref"]
    is_obj, is_ref = scores["is_obj"].astype(bool), scores["is_ref"].astype(bool)
    t_obj, f_obj = best_f1_threshold(obj, is_obj)
    keep = obj >= t_obj
    t_ref, f_ref = best_f1_threshold(ref[keep], is_ref[keep])
    return {"objectness_threshold": round(t_obj, 4), "refer_threshold": round(t_ref, 4),
            "f1_objectness": round(f_obj, 4), "f1_refer": round(f_ref, 4),
            "clips": clips, "proposals": int(obj.size),
            "positives": int(is_obj.sum()), "referred_positives": int(is_ref.sum()),
            "pos_iou": pos_iou}


def calibrate_thresholds(model, clips: list[dict], pos_iou: float | None = None) -> dict:
    """Objectness and referring thresholds from decoded training clips.

    Args:
        model: the trained ViewSAM (eval mode is set here).
        clips: :func:`raysys.training.data.load_clip` outputs (numpy, one sample each).
        pos_iou: IoU with a target box at which a proposal counts as that object (default:
            the Candidate Generator's ``pos_iou``).
    """
    scores = calibration_scores(model, clips, pos_iou)
    if scores is None:
        return {}
    pos_iou = model.cfg.candidate_generator.pos_iou if pos_iou is None else pos_iou
    return thresholds_from_scores(scores, len(clips), pos_iou)


def _payload_scores(payload: dict, source, spec, samples, threads: int
                    ) -> tuple[dict | None, float]:
    """:func:`calibration_scores` of the payload's model on ``samples`` (decoded here),
    with ``threads`` torch threads; and the CG's ``pos_iou``."""
    import torch

    from raysys.training.data import load_clip
    from raysys.viewsam.checkpoint import model_from_payload

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        model = model_from_payload(payload, name="final checkpoint").model
        decoded = [load_clip(source, s, spec) for s in samples]
        cg = model.cfg.candidate_generator
        return calibration_scores(model, decoded), cg.pos_iou
    finally:
        torch.set_num_threads(before)


def calibrate_payload(payload: dict, source, spec, samples, clips: int = 32,
                      held_out: bool = False, parallel: int = 1, cpus: float = 1.0) -> dict:
    """Tracker thresholds on ``clips`` of ``samples`` (:mod:`raysys.training.calibrate`):
    the run's own supervision (pseudo labels for a weak run), on clips it did not train on
    where ``held_out``.

    ``parallel`` > 1: the clips are split into that many consecutive parts, scored by as
    many Ray tasks of ``cpus`` CPUs each (a training's workers, free once it has
    finished), and joined in order: the same thresholds as one part, in a fraction of the
    time. Each part decodes its clips and runs the model in its own process (under the GT
    guard of the job's runtime environment, like the training workers)."""
    chosen = list(samples[:clips])
    parts = [p.tolist() for p in np.array_split(np.arange(len(chosen)), parallel)
             if p.size] if parallel > 1 and len(chosen) > 1 else [list(range(len(chosen)))]
    if len(parts) > 1:
        import ray

        task = ray.remote(_payload_scores).options(num_cpus=cpus, num_gpus=0, max_retries=2)
        ref = ray.put(payload)
        got = ray.get([task.remote(ref, source, spec, [chosen[i] for i in p],
                                   int(cpus)) for p in parts])
    else:
        got = [_payload_scores(payload, source, spec, chosen, 1)]
    if got[0][0] is None:
        return {"held_out": held_out}
    scores = {k: np.concatenate([g[k] for g, _ in got]) for k in got[0][0]}
    return {**thresholds_from_scores(scores, len(chosen), got[0][1]), "held_out": held_out}
