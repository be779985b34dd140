"""Diagnostics of a trained ViewSAM on a test split: where its score is lost, part by part.

GT is read here for evaluation only (this is the report's evaluation side; training never
imports it). For one checkpoint and one dataset split, :func:`run_diagnostics` measures:

* **the SAM2 base** (``base``): memory-only mask IoU (the GT box prompts the first frame of
  a single-view clip of ``base_frames`` frames, SAM2's memory carries the object over the
  rest; IoU over the visible object-frames after the first) and box-prompted mask IoU (the
  GT box on every visible frame), through
  :func:`raysys.training.pretrain_base.evaluate_base` (the tracker's SAM2 steps). It
  depends on the base's weights only, so two models on one frozen base (the report's weak
  and full) share it through a cache file named by :func:`base_digest`;
* **the Candidate Generator** (``candidates``, :func:`candidate_scores`): proposal recall at
  IoU 0.5 against every visible GT person box, and the referring AUC of its matching branch
  (Eq. 17) scoring every GT box of a frame for the expression, referred against not
  referred (0.5 = chance);
* **CGCT** (``cgct``, :func:`cgct_margin`): the cross-view identity margin of Fig. 4(b)
  (paper: 0.248 without view modulation, 0.422 with): mean cosine of the Eq. 10-12
  embeddings of the same GT id in two different views minus that of different ids,
  embeddings pooled under the GT masks;
* **cross-view identities with perfect boxes** (``identity``,
  :func:`raysys.report.oracle.identity_oracle`): the tracker given every GT person box
  (``gt_all``) against every GT person under the true id.

:func:`diagnostics_job` runs it for the report in a process of its own.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DiagnosticsConfig", "auc", "diagnostic_clips", "candidate_scores",
           "cgct_margin", "base_scores", "base_digest", "run_diagnostics", "diagnostics_job"]


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Sizes of the diagnostics (each a sample of the split, seeded)."""

    clips: int = 12  # multi-view clips (every view, clip_frames frames) for CG and CGCT
    clip_frames: int = 4  # frames per multi-view clip
    max_objects: int = 16  # GT objects per clip (referred first, then the others)
    base_clips: int = 32  # single-view clips for the base's mask IoU
    base_frames: int = 8  # the prompt's frame and the 7 that memory carries
    base_objects: int = 6  # objects per base clip (visible on its first frame)
    units: int = 1  # expressions tracked with every GT box, spread over the split (0: that
    #   diagnostic is not run). With 20 people per view it costs ~5 CPU-minutes per unit
    #   on the main job's 60-frame scenes (2026-12-04)
    seed: int = 1
    threads: int = 2  # torch threads

    def __post_init__(self) -> None:
        for name in ("clips", "clip_frames", "max_objects", "base_clips", "base_objects",
                     "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.base_frames < 2:
            raise ValueError(f"base_frames must be >= 2, got {self.base_frames}")
        if self.units < 0:
            raise ValueError(f"units must be >= 0, got {self.units}")


def auc(pos: list[float], neg: list[float]) -> float | None:
    """ROC AUC of positives' against negatives' scores (:func:`raysys.eval.auc.roc_auc`,
    ties counted half); None without both classes."""
    from raysys.eval.auc import roc_auc

    if not len(pos) or not len(neg):
        return None
    return roc_auc(list(pos) + list(neg), [1] * len(pos) + [0] * len(neg))


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def diagnostic_clips(layout, image_size: int, cfg: DiagnosticsConfig, *,
                     masks: bool = True, category: str | None = "person",
                     crop_size: tuple[int, int] | None = None,
                     crop_frame: tuple[int, int] | None = None) -> list[dict]:
    """``cfg.clips`` decoded GT clips of ``layout`` (every view, true ids, referred objects
    first; :func:`raysys.training.data.load_clip` arrays at ``image_size``, with object
    crops of ``crop_size`` and frames at ``crop_frame`` if given), with the GT objects of
    ``category`` only (None: every object)."""
    from raysys.training.config import TrainConfig
    from raysys.training.data import ClipSpec, load_clip, plan_samples
    from raysys.training.sources import GroundTruthSource

    class _Source(GroundTruthSource):
        def _load_objects(self, scene: str):
            df = super()._load_objects(scene)
            return df if category is None else df[df["category"] == category]

    d = TrainConfig()
    spec = ClipSpec(size=image_size, frames=cfg.clip_frames, stride=cfg.clip_frames, step=1,
                    max_objects=cfg.max_objects, max_views=None,
                    min_box_side=d.min_box_side, use_masks=masks, variant="standard",
                    max_dense=max(cfg.max_objects, d.max_dense_objects), crop_size=crop_size,
                    crop_frame=crop_frame)
    src = _Source(layout)
    return [load_clip(src, s, spec) for s in plan_samples(src, spec, cfg.clips, seed=cfg.seed)]


def _batch(model, clip: dict):
    """One clip -> ``(ClipEncoding, ClipTargets)`` of ``model`` (no gradient)."""
    from raysys.training.data import collate

    frames, texts, targets, vids = collate({k: v[None] for k, v in clip.items()})
    dev = next(model.parameters()).device
    ce = model.encode_clip(frames.to(dev), {k: x.to(dev) for k, x in
                                             model.tokenize(texts).items()}, vids.to(dev),
                           crop_frames=None if targets.crop_frames is None else
                           targets.crop_frames.to(dev))
    return ce, targets.to(dev)


def candidate_scores(model, clips: list[dict], threshold: float | None = None) -> dict:
    """Proposal recall and referring AUC of ``model``'s Candidate Generator on GT clips.

    Keys: ``objects`` (visible GT objects), ``recall_iou50`` / ``recall_iou30`` (share
    covered by some proposal at IoU >= 0.5 / 0.3), ``recall_iou50_confident`` (proposals
    above ``threshold`` only; None without one), ``refer_auc_gt_boxes`` (the matching
    branch scoring every GT box itself), ``refer_auc`` (the best-covering proposal's
    referring probability, objects covered at IoU >= 0.3), ``refer_median``,
    ``refer_objects``. None everywhere for a model without a Candidate Generator.
    """
    import numpy as np
    import torch

    from raysys.viewsam.candidate_generator import pairwise_iou

    if model.candidate_generator is None:
        return {"objects": 0, "recall_iou50": None, "refer_auc_gt_boxes": None,
                "note": "no Candidate Generator (ablation)"}
    hit50 = hit30 = hit50c = total = 0
    pos: list[float] = []
    neg: list[float] = []
    gpos: list[float] = []
    gneg: list[float] = []
    with torch.no_grad():
        for c in clips:
            ce, tg = _batch(model, c)
            a = tg.dense_boxes.shape[3]
            tb = (tg.dense_boxes * ce.scale).reshape(-1, a, 4)  # model pixels
            tv = tg.dense_visible.reshape(-1, a)
            iou = pairwise_iou(tb, ce.cand.boxes)  # (N, A, K)
            best, arg = iou.max(-1)
            hit50 += int((best[tv] >= 0.5).sum())
            hit30 += int((best[tv] >= 0.3).sum())
            if threshold is not None:
                conf = (ce.cand.objectness >= threshold)[:, None, :]
                hit50c += int(((iou * conf).amax(-1)[tv] >= 0.5).sum())
            total += int(tv.sum())
            # referred: a dense box equal to one of the M boxes of a referred object
            m = tg.boxes.shape[3]
            mb = (tg.boxes * ce.scale).reshape(-1, m, 4)
            mref = (tg.visible & tg.referred[:, None, None]).reshape(-1, m)
            referred = ((pairwise_iou(tb, mb) > 0.99) & mref[:, None, :]).any(-1)
            prob = ce.cand.refer_logits.sigmoid().gather(1, arg)  # (N, A)
            covered = tv & (best >= 0.3)
            pos += prob[covered & referred].tolist()
            neg += prob[covered & ~referred].tolist()
            gprob = model.candidate_generator.match_boxes(ce.cand, tb).sigmoid()
            gpos += gprob[tv & referred].tolist()
            gneg += gprob[tv & ~referred].tolist()
    n = max(total, 1)
    return {"objects": total, "recall_iou50": _r(hit50 / n), "recall_iou30": _r(hit30 / n),
            "recall_iou50_confident": _r(hit50c / n) if threshold is not None else None,
            "refer_auc_gt_boxes": _r(auc(gpos, gneg)), "refer_auc": _r(auc(pos, neg)),
            "refer_median": {"referred": _r(np.median(pos)) if pos else None,
                             "others": _r(np.median(neg)) if neg else None},
            "refer_objects": {"referred": len(pos), "others": len(neg),
                              "gt_referred": len(gpos), "gt_others": len(gneg)}}


def _embed_gt(model, ce, tg):
    """CGCT embeddings (Eq. 10-12) of the GT masks of one clip: ``(V*T, M, D)``, unit norm."""
    import torch.nn.functional as F

    b, v, t, m = tg.visible.shape
    masks = tg.masks.reshape(b * v * t, m, *tg.masks.shape[-2:]).float()
    vt = None
    if getattr(model.cgct, "film", None) is not None and ce.views is not None:
        vt = ce.views.reshape(b * v * t, -1)
    crop = () if model.cgct.backbone is None else (  # GT boxes: S px = mask px
        tg.crops.reshape(b * v * t, m, *tg.crops.shape[-3:]).float() / 255.0,
        tg.boxes.reshape(b * v * t, m, 4))
    return F.normalize(model.cgct(ce.enc["stages"], masks, vt, *crop).float(), dim=-1)


def cgct_margin(model, clips: list[dict]) -> dict:
    """Fig. 4(b)'s margin on GT masks: mean cosine of two embeddings of the same GT id in
    different views, minus that of different ids in different views (pairs inside a clip,
    any two of its frames). ``within_view_margin``: the same within one view across
    frames. None for a model without CGCT."""
    import torch

    if model.cgct is None:
        return {"margin": None, "note": "no CGCT (ablation)"}
    sums = {k: [0.0, 0] for k in ("same", "diff", "same_within", "diff_within")}
    with torch.no_grad():
        for c in clips:
            ce, tg = _batch(model, c)
            emb = _embed_gt(model, ce, tg)  # (V*T, M, D)
            _, v, t, m = tg.visible.shape
            keep = (tg.visible.reshape(v * t, m)
                    & (tg.masks.reshape(v * t, m, -1).sum(-1) > 0)
                    & (tg.ids[0] >= 0)[None])
            rows, slots = keep.nonzero(as_tuple=True)
            if rows.numel() < 2:
                continue
            e = emb[rows, slots]  # (P, D)
            cos = e @ e.T
            view = rows // t
            ids = tg.ids[0][slots]
            same, cross = ids[:, None] == ids[None], view[:, None] != view[None]
            off = ~torch.eye(len(rows), dtype=torch.bool, device=e.device)
            for key, sel in (("same", same & cross), ("diff", ~same & cross),
                             ("same_within", same & ~cross & off),
                             ("diff_within", ~same & ~cross)):
                sums[key][0] += float(cos[sel].sum())
                sums[key][1] += int(sel.sum())
    mean = {k: (s / n if n else None) for k, (s, n) in sums.items()}

    def margin(a, b):
        return None if mean[a] is None or mean[b] is None else _r(mean[a] - mean[b])

    return {"margin": margin("same", "diff"), "same_id": _r(mean["same"]),
            "different_id": _r(mean["diff"]),
            "pairs": {"same": sums["same"][1] // 2, "different": sums["diff"][1] // 2},
            "within_view_margin": margin("same_within", "diff_within")}


def base_scores(model, layout, cfg: DiagnosticsConfig) -> dict:
    """The SAM2 base's memory-only and box-prompted mask IoU on single-view GT clips of
    ``layout`` (:func:`raysys.training.pretrain_base.evaluate_base`)."""
    from raysys.training.pretrain_base import (
        PretrainConfig,
        ScenePool,
        eval_clip_batches,
        evaluate_base,
        load_dataset_scenes,
    )

    size = int(model.image_size)
    pcfg = PretrainConfig(image_size=size, clip_frames=cfg.base_frames,
                          max_objects=cfg.base_objects, steps=1)
    scenes = load_dataset_scenes(layout.root, layout.domain, layout.split, size)
    clips = eval_clip_batches(ScenePool(scenes), pcfg, cfg.base_clips, seed=cfg.seed)
    ev = evaluate_base(model.sam2, clips)
    return {k: ev[k] for k in ("clips", "objects", "memory_iou", "box_iou",
                               "memory_object_frames", "box_object_frames",
                               "memory_false_present", "memory_iou_per_frame")}


def base_digest(model, layout, cfg: DiagnosticsConfig) -> str:
    """What :func:`base_scores` depends on, hashed: the SAM2 base's weights (every tensor
    of its state, bit for bit), the model's input side, the split (its folder and the
    dataset's ``dataset.json``) and the base sizes and seed of ``cfg``."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for name, t in model.sam2.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    meta = Path(layout.root) / "dataset.json"
    h.update(json.dumps([int(model.image_size), str(Path(layout.root).resolve()),
                         layout.domain, layout.split, cfg.base_clips, cfg.base_frames,
                         cfg.base_objects, cfg.seed,
                         meta.read_text() if meta.is_file() else None]).encode())
    return h.hexdigest()[:16]


def _cached_base(model, layout, cfg: DiagnosticsConfig, cache: Path | None) -> dict:
    """:func:`base_scores`, read from ``cache/base_<digest>.json`` when a model on the same
    base has written it (``"cached": true``), else measured and written there."""
    from raysys.io.jsonio import write_json_file

    if cache is None:
        return base_scores(model, layout, cfg)
    f = Path(cache) / f"base_{base_digest(model, layout, cfg)}.json"
    if f.is_file():
        return {**json.loads(f.read_text()), "cached": True}
    res = base_scores(model, layout, cfg)
    write_json_file(f, res, indent=2)
    return res


def run_diagnostics(model, layout, cfg: DiagnosticsConfig | None = None,
                    base_cache: str | Path | None = None) -> dict:
    """Every diagnostic of the module doc for ``model`` (a loaded ViewSAM) on ``layout``;
    ``base_cache``: a folder where the base's scores are shared by models on the same base
    (None: always measured)."""
    import torch

    from raysys.report.oracle import identity_oracle
    from raysys.training.data import crop_frame_of
    from raysys.viewsam.osnet_backbone import CROP_SIZE

    cfg = cfg or DiagnosticsConfig()
    torch.set_num_threads(cfg.threads)
    model = model.eval()
    out: dict = {"split": f"{layout.domain}/{layout.split}", "config": dataclasses.asdict(cfg),
                 "seconds": {}}

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        out[name] = fn(*args)
        out["seconds"][name] = round(time.perf_counter() - t0, 1)

    timed("base", _cached_base, model, layout, cfg, base_cache)
    osnet = getattr(model.cgct, "backbone", None) is not None
    clips = diagnostic_clips(layout, int(model.image_size), cfg,
                             crop_size=CROP_SIZE if osnet else None,
                             crop_frame=crop_frame_of(model.cfg))
    thr = (getattr(model, "calibration", None) or {}).get("objectness_threshold")
    timed("candidates", candidate_scores, model, clips, thr)
    timed("cgct", cgct_margin, model, clips)
    if cfg.units:
        timed("identity", identity_oracle, model, layout, cfg.units)
    return out


def diagnostics_job(checkpoint: str | Path, layout, out: str | Path,
                    cfg: DiagnosticsConfig | None = None, allow_partial: bool = False,
                    base_cache: str | Path | None = None) -> dict:
    """:func:`run_diagnostics` of a checkpoint folder, written to the JSON ``out`` (the
    report's ``diagnostics_*`` steps run it in a process of their own)."""
    from raysys.io.jsonio import write_json_file
    from raysys.viewsam.checkpoint import load_viewsam_checkpoint

    model = load_viewsam_checkpoint(checkpoint, allow_partial=allow_partial).model
    res = {"checkpoint": str(checkpoint), **run_diagnostics(model, layout, cfg, base_cache)}
    write_json_file(Path(out), json.loads(json.dumps(res, default=float)), indent=2)
    return res
