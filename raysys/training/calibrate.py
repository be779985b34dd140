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

The referring threshold is chosen at one of two levels (``level``):

* ``"proposal"`` (the default): every proposal counts once.
* ``"track"``: where the tracker decides. It outputs a track while the mean
  referring probability of its proposals is above the threshold (``min_refer``), so each
  labelled object of a clip's view is scored by the mean referring probability of the
  proposals that cover it (above the objectness threshold, IoU >= ``pos_iou``, the best
  covering one per frame), and the threshold best separates the referred objects' means
  from the others' (max F1). One object-view counts once however many frames it spans.
  It picks lower thresholds than the proposal level (0.53 against 0.73 for the main
  job's weak model, 0.61 against 0.86 for the fully supervised one); on a held-out split
  that raised the fully supervised model's CVR-IDF1 by 4 points and left the weak
  model's where it was, while both lost CVR-MA (lab notes, stop 48), so it is not the
  default.

Both thresholds are recorded (``refer_threshold_proposal``, ``refer_threshold_track``);
``refer_threshold`` is the chosen level's. Without a referred object-view among the clips
the track level falls back on the proposal level.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LEVELS", "best_f1_threshold", "object_view_means", "score_clips", "merge_scores",
           "thresholds_from_scores", "calibrate_thresholds",
           "calibrate_payload"]

LEVELS = ("track", "proposal")  # where the referring threshold is chosen (module doc)
# the fewest clips a calibration task of its own scores: a task's start (a process that
# imports torch and transformers and builds the model) costs ~10 s on 2 cores, ~8 clips'
# scoring, so fewer clips than two parts' worth are scored in the calling process
MIN_PART_CLIPS = 16


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


def object_view_means(covers, t_obj: float, pos_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """The track level's scores: for each (clip, view, labelled object), the mean referring
    probability of the proposal that covers it best (IoU >= ``pos_iou``, objectness >=
    ``t_obj``) in each frame where one does; and whether the object is referred.

    Args:
        covers: per view-frame ``(clip, view, iou (K, M), visible (M,), referred (M,),
            objectness (K,), refer (K,))``, numpy.

    Returns ``(scores, labels)``, one entry per object-view covered in at least one frame.
    """
    means: dict[tuple, list[float]] = {}  # (clip, view, object, referred) -> per frame
    for ci, view, iou, vis, referred, o, r in covers:
        ok = (o >= t_obj)[:, None] & (iou >= pos_iou) & vis[None, :]  # (K, M)
        for m in np.flatnonzero(ok.any(0)):
            best = int(np.argmax(np.where(ok[:, m], iou[:, m], -1.0)))
            means.setdefault((ci, view, int(m), bool(referred[m])), []).append(float(r[best]))
    return (np.array([np.mean(v) for v in means.values()], dtype=np.float64),
            np.array([k[3] for k in means], dtype=bool))


def score_clips(model, clips: list[dict], pos_iou: float, first: int = 0) -> dict:
    """What calibration measures on decoded clips, before any threshold is chosen: per
    proposal its objectness, referring probability and whether it covers a labelled
    (``is_obj``) or a referred (``is_ref``) object; per view-frame the ``covers`` that
    :func:`object_view_means` reads. ``first``: the index of ``clips[0]`` among all the
    calibration clips (a part of them scored in a task of its own, :func:`calibrate_payload`).
    Merged parts (:func:`merge_scores`) give what one pass over all the clips gives."""
    import torch

    from raysys.training.data import collate
    from raysys.viewsam.candidate_generator import pairwise_iou

    model.eval()
    obj, ref, is_obj, is_ref = [], [], [], []
    covers = []  # per view-frame: clip, view, IoUs (K, M), visible, referred, objectness, refer
    with torch.no_grad():
        for ci, c in enumerate(clips, start=first):
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
                if boxes.shape[1]:
                    covers.append((ci, n // t, pairwise_iou(props, boxes[n]).numpy(),
                                   vis[n].numpy(), tg.referred[0].numpy(), obj[-1], ref[-1]))
    return {"obj": np.concatenate(obj), "ref": np.concatenate(ref),
            "is_obj": np.concatenate(is_obj), "is_ref": np.concatenate(is_ref),
            "covers": covers, "clips": len(clips)}


def merge_scores(parts: list[dict]) -> dict:
    """:func:`score_clips` of consecutive parts of the clips, in order, as one."""
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("obj", "ref", "is_obj", "is_ref")}
    return {**out, "covers": [c for p in parts for c in p["covers"]],
            "clips": sum(p["clips"] for p in parts)}


def thresholds_from_scores(sc: dict, pos_iou: float, level: str = "proposal") -> dict:
    """The thresholds (module doc) from :func:`score_clips`' measurements."""
    obj, ref, is_obj, is_ref = sc["obj"], sc["ref"], sc["is_obj"], sc["is_ref"]
    t_obj, f_obj = best_f1_threshold(obj, is_obj)
    keep = obj >= t_obj
    t_ref, f_ref = best_f1_threshold(ref[keep], is_ref[keep])
    out = {"objectness_threshold": round(t_obj, 4), "refer_threshold": round(t_ref, 4),
           "f1_objectness": round(f_obj, 4), "f1_refer": round(f_ref, 4),
           "clips": sc["clips"], "proposals": int(obj.size),
           "positives": int(is_obj.sum()), "referred_positives": int(is_ref.sum()),
           "pos_iou": pos_iou, "level": level, "refer_threshold_proposal": round(t_ref, 4)}
    scores, labels = object_view_means(sc["covers"], t_obj, pos_iou)
    if labels.any():
        t_trk, f_trk = best_f1_threshold(scores, labels)
        out |= {"refer_threshold_track": round(t_trk, 4), "f1_refer_track": round(f_trk, 4),
                "object_views": int(labels.size), "referred_object_views": int(labels.sum())}
        if level == "track":
            out["refer_threshold"] = round(t_trk, 4)
    return out


def calibrate_thresholds(model, clips: list[dict], pos_iou: float | None = None,
                         level: str = "proposal") -> dict:
    """Objectness and referring thresholds from decoded training clips.

    Args:
        model: the trained ViewSAM (eval mode is set here).
        clips: :func:`raysys.training.data.load_clip` outputs (numpy, one sample each).
        pos_iou: IoU with a target box at which a proposal counts as that object (default:
            the Candidate Generator's ``pos_iou``).
        level: :data:`LEVELS`, where the referring threshold is chosen (module doc).
    """
    if level not in LEVELS:
        raise ValueError(f"calibration level must be one of {LEVELS}, got {level!r}")
    if model.candidate_generator is None:
        return {}
    pos_iou = model.cfg.candidate_generator.pos_iou if pos_iou is None else pos_iou
    return thresholds_from_scores(score_clips(model, clips, pos_iou), pos_iou, level)


def _score_part(payload: dict, source, spec, samples, first: int, threads: int) -> dict:
    """:func:`score_clips` of ``samples`` with the payload's model (a calibration part)."""
    import torch

    from raysys.training.data import load_clip
    from raysys.viewsam.checkpoint import model_from_payload

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        model = model_from_payload(payload, name="final checkpoint").model
        if model.candidate_generator is None:
            return {}
        decoded = [load_clip(source, s, spec) for s in samples]
        pos_iou = model.cfg.candidate_generator.pos_iou
        return {**score_clips(model, decoded, pos_iou, first), "pos_iou": pos_iou}
    finally:
        torch.set_num_threads(before)


def calibrate_payload(payload: dict, source, spec, samples, clips: int = 128,
                      held_out: bool = False, level: str = "proposal", parts: int = 1,
                      cpus: float = 1.0, min_part_clips: int = MIN_PART_CLIPS) -> dict:
    """Tracker thresholds on ``clips`` of ``samples`` (:mod:`raysys.training.calibrate`):
    the run's own supervision (pseudo labels for a weak run), on clips it did not train on
    where ``held_out``.

    ``parts`` > 1 (the run's training workers, :func:`raysys.training.finish.finish_run`)
    scores consecutive parts of the clips in as many Ray tasks of ``cpus`` CPUs each, the
    idle training workers' share, and chooses the thresholds on them all: the same
    thresholds as one pass, in about ``1/parts`` of its time where the CPUs are there
    (the 128 clips of the quick schedule: ~1.3 s a clip on one CPU core). Tasks run under
    the job's runtime environment: a weak run's GT guard holds in them as in its workers.
    Each part holds at least ``min_part_clips`` clips (fewer parts where there are fewer
    clips: a task's start costs more than scoring a few clips). With one part the clips
    are scored here, on ``int(cpus)`` threads."""
    if level not in LEVELS:
        raise ValueError(f"calibration level must be one of {LEVELS}, got {level!r}")
    chosen = list(samples[:clips])
    threads = max(1, int(cpus))
    parts = max(1, min(int(parts), len(chosen) // max(1, int(min_part_clips))))
    if parts == 1:
        scored = [_score_part(payload, source, spec, chosen, 0, threads)]
    else:
        import ray

        bounds = np.linspace(0, len(chosen), parts + 1).round().astype(int)
        ref = ray.put(payload)
        task = ray.remote(_score_part).options(num_cpus=cpus, max_retries=2)
        scored = ray.get([task.remote(ref, source, spec, chosen[a:b], int(a), threads)
                          for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    if not scored[0]:
        return {"held_out": held_out}  # no Candidate Generator: nothing to calibrate
    return {**thresholds_from_scores(merge_scores(scored), scored[0]["pos_iou"], level),
            "held_out": held_out, "parts": len(scored)}
