"""Zero-shot baseline "SAM2" of the paper's Table 1: text-filtered boxes + SAM2 propagation.

1. Detector: the concept tracker's tracklets of the expression's category, grouped across
   views into trajectories exactly as the concept baseline does
   (:func:`raysys.baselines.zero_shot_concept.scene_identities`).
2. Text filter: each trajectory's crops (sampled over views and frames) are described by
   the describer backend; description and expression are embedded by the text embedder;
   a trajectory is kept when its cosine similarity to the expression is within
   ``margin`` of the best trajectory of the scene (and at least ``min_similarity``).
   A margin rather than a fixed threshold because cosine levels differ between text
   embedders and expressions, while "as good as the best match" does not; several
   trajectories with the same attributes (what CRTrack expressions refer to) then pass
   together.
3. Propagation: every tracklet of a kept trajectory prompts SAM2's video predictor
   (:class:`raysys.baselines.sam2_video.Sam2VideoTracker`) with its box on its first
   frame; the mask is propagated forward to the end of the view (until it is empty) and
   its bounding box is the output. A tracklet's output stops where the next tracklet of
   the same trajectory in that view starts. Global ids are the trajectory ids.

SAM2 weights (:class:`Sam2Spec`): a SAM2 ``.pt`` with its YAML, the SAM2 base of a trained
ViewSAM checkpoint, or none (random init: the pipeline runs, the boxes mean nothing).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysys.baselines.sam2_video import Sam2VideoTracker
from raysys.baselines.zero_shot_concept import (
    DEFAULT_THRESHOLD,
    SceneIdentities,
    TrackletSource,
    _plan,
    scene_identities,
)
from raysys.io import crtrack
from raysys.io.dataset import DatasetLayout

__all__ = ["Sam2Spec", "TextFilterConfig", "describe_trajectories", "select_trajectories",
           "run_zero_shot_sam2", "DEFAULT_DESCRIBER"]

DEFAULT_DESCRIBER = "attributes"  # the describer of the text filter, as Stage 1's default


@dataclass(frozen=True)
class Sam2Spec:
    """Where the SAM2 video predictor's weights come from (at most one source)."""

    config: str | None = None  # SAM2 YAML (file, sam2 package name, "tiny"); None = tiny
    checkpoint: str | None = None  # SAM2 .pt to load into ``config``
    viewsam_checkpoint: str | None = None  # `raysys train` output folder (final/ or epoch)
    image_size: int | None = None  # resize a random-init YAML (e.g. 128, faster on a CPU)
    seed: int = 0  # random init only: torch seed, so that runs repeat
    allow_partial: bool = False  # viewsam_checkpoint: load what fits (--allow-partial)

    def build(self, device: str = "cpu") -> Sam2VideoTracker:
        import torch

        if self.checkpoint and self.viewsam_checkpoint:
            raise ValueError("give a SAM2 checkpoint or a ViewSAM checkpoint, not both")
        if self.viewsam_checkpoint:
            return Sam2VideoTracker.from_viewsam_checkpoint(
                self.viewsam_checkpoint, device, allow_partial=self.allow_partial)
        if self.checkpoint:
            if self.config is None:
                raise ValueError(f"SAM2 checkpoint {self.checkpoint} needs its YAML: pass "
                                 "the config it was trained with, e.g. "
                                 "configs/sam2.1/sam2.1_hiera_t.yaml")
            return Sam2VideoTracker.from_sam2_checkpoint(self.config, self.checkpoint, device)
        from raysys.viewsam.base import sam2_yaml_text

        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            return Sam2VideoTracker(sam2_yaml_text(self.config, self.image_size), None, device)


@dataclass(frozen=True)
class TextFilterConfig:
    """Which trajectories an expression keeps (cosine of description and expression)."""

    margin: float = 0.05  # keep trajectories within this of the scene's best similarity
    min_similarity: float = 0.0  # and at least this
    max_crops: int = 24  # crops per trajectory given to the describer


def describe_trajectories(ids: SceneIdentities, view_dirs: dict[str, Path], describer,
                          max_crops: int) -> dict[int, str]:
    """One description per global id from crops spread over its views and frames."""
    from raysys.io.video import VideoFrames
    from raysys.labeling.describe_stage import sample_crops
    from raysys.labeling.tracking_stage import crop

    by_gid: dict[int, list] = {}
    for t, g in zip(ids.tracklets, ids.gids, strict=True):
        by_gid.setdefault(int(g), []).append(t)
    videos: dict[str, VideoFrames] = {}
    ctx_of = getattr(describer, "frame_context", None)  # a describer that reads the frame
    out = {}
    for g, tls in sorted(by_gid.items()):
        crops, masks, contexts = [], [], []
        for view, ti, k in sample_crops(tls, max_crops):
            if view not in videos:
                videos[view] = VideoFrames(ids.scene, view, view_dirs[view])
            t = tls[ti]
            img = videos[view][videos[view].index_of(int(t.frames[k]))]
            c, cm = crop(img, t.boxes[k], t.masks[k].decode() if t.masks else None)
            crops.append(c)
            masks.append(cm)
            if callable(ctx_of):
                contexts.append(ctx_of(img))
        use_masks = all(m is not None for m in masks)
        extra = {"contexts": contexts} if callable(ctx_of) else {}
        out[g] = describer.describe(crops, masks if use_masks else None, ids.category,
                                    **extra)
    return out


def select_trajectories(sims: dict[int, float], cfg: TextFilterConfig) -> list[int]:
    """Global ids kept for one expression: within ``margin`` of the best similarity."""
    if not sims:
        return []
    floor = max(max(sims.values()) - cfg.margin, cfg.min_similarity)
    return sorted(g for g, s in sims.items() if s >= floor)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _propagate_view(sam2: Sam2VideoTracker, view_dir: Path, tracklets: dict[int, object]):
    """SAM2 boxes of each tracklet (keyed by an int id): ``{id: {frame number: xyxy}}``."""
    frames = crtrack.list_frames(view_dir)
    index = {f: i for i, (f, _) in enumerate(frames)}
    prompts = {}
    for k, t in tracklets.items():
        b = t.boxes[0]
        prompts[k] = (index[int(t.frames[0])], (b[0], b[1], b[0] + b[2], b[1] + b[3]))
    res = sam2.track([p for _, p in frames], prompts)
    boxes = {k: {frames[i][0]: b for i, b in bs.items()} for k, bs in res.boxes.items()}
    return boxes, res


def _rows(ids: SceneIdentities, keep: list[int], views: list[str], boxes: dict) -> dict:
    """Prediction rows of the kept trajectories from the SAM2 boxes of their tracklets."""
    out = {v: [] for v in views}
    for g in keep:
        for v in views:
            tls = sorted((t for t, gg in zip(ids.tracklets, ids.gids, strict=True)
                          if gg == g and t.view == v), key=lambda t: t.frames[0])
            for n, t in enumerate(tls):
                end = tls[n + 1].frames[0] if n + 1 < len(tls) else np.inf
                for f, b in sorted(boxes[(ids.category, v, t.local_id)].items()):
                    if f < end:
                        out[v].append([f, g, *b])
    return {v: np.array(r, np.float64).reshape(-1, 6) for v, r in out.items()}


def _text_filter(queries, cats: dict, all_desc: list[tuple], embedder,
                 cfg: TextFilterConfig) -> tuple[dict, dict, dict]:
    """Per expression, the trajectories of its scene and category whose description is
    close enough to it in text: ``(kept ids, their similarities, every trajectory's
    similarity)`` by expression name."""
    d_emb = _unit(embedder.embed([s for _, _, s in all_desc])) if all_desc else None
    q_emb = _unit(embedder.embed([q.text for q in queries]))
    kept, sims_out, sims_all = {}, {}, {}
    for qi, q in enumerate(queries):
        key = (q.scene, cats[q.name])
        sims = {g: float(d_emb[i] @ q_emb[qi]) for i, (k, g, _) in enumerate(all_desc)
                if k == key}
        kept[q.name] = select_trajectories(sims, cfg)
        sims_out[q.name] = {g: round(sims[g], 4) for g in kept[q.name]}
        sims_all[q.name] = {g: round(v, 4) for g, v in sorted(sims.items())}
    return kept, sims_out, sims_all


def _propagate_kept(tracker, layout: DatasetLayout, need: dict, progress: bool,
                    ) -> tuple[dict, int, float]:
    """SAM2 propagation of the kept tracklets, one video per (scene, view): their boxes by
    scene and tracklet key, SAM2 frame steps and seconds."""
    from tqdm.auto import tqdm

    boxes: dict[str, dict] = {}
    steps, seconds = 0, 0.0
    for (scene, view), tls in tqdm(sorted(need.items()), disable=not progress,
                                   desc="SAM2 propagation (scene, view)"):
        keys = list(tls)
        b, res = _propagate_view(tracker, layout.view_dir(scene, view),
                                 {i: tls[k] for i, k in enumerate(keys)})
        boxes.setdefault(scene, {}).update({k: b[i] for i, k in enumerate(keys)})
        steps += res.frames_processed
        seconds += res.seconds
    return boxes, steps, seconds


def _propagate_and_write(tracker, layout: DatasetLayout, pred_root, queries, cats: dict,
                         ids: dict, views: dict, kept: dict, progress: bool) -> dict:
    """SAM2 propagation of every tracklet some expression keeps (one video per view), the
    kept trajectories' rows written per expression; returns the propagation's counts."""
    need: dict[tuple[str, str], dict[tuple[str, str, int], object]] = {}
    for q in queries:
        key = (q.scene, cats[q.name])
        for t, g in zip(ids[key].tracklets, ids[key].gids, strict=True):
            if int(g) in kept[q.name]:
                need.setdefault((q.scene, t.view), {})[(key[1], t.view, t.local_id)] = t
    boxes, sam2_steps, sam2_s = _propagate_kept(tracker, layout, need, progress)
    for q in queries:
        key = (q.scene, cats[q.name])
        crtrack.write_expression_pred(
            pred_root, q.name, _rows(ids[key], kept[q.name], views[q.scene],
                                     boxes.get(q.scene, {})))
    return {"tracklets_propagated": sum(len(v) for v in need.values()),
            "sam2_frame_steps": sam2_steps, "sam2_propagate_s": sam2_s}


def run_zero_shot_sam2(layout: DatasetLayout, pred_root: str | os.PathLike, *,
                       sam2: Sam2Spec | Sam2VideoTracker = Sam2Spec(),
                       label_dir: str | os.PathLike | None = None,
                       tracker: str = "classical", reid: str = "stripes",
                       threshold: float = DEFAULT_THRESHOLD, describer: str = DEFAULT_DESCRIBER,
                       text: str = "minilm", text_filter: TextFilterConfig = TextFilterConfig(),
                       device: str = "cpu", progress: bool = True,
                       propagate: bool = True) -> dict:
    """Predict every expression of a split with the SAM2 baseline (CRTrack layout).

    Args:
        layout: data (frames, category labels, expression folder names).
        pred_root: output, ``<pred_root>/<Scene>_<expression>/View<k>.txt``.
        sam2: where the SAM2 weights come from, or a built tracker.
        label_dir: a Stage 1 output folder of the same data and backends (tracklets reused).
        tracker, reid, threshold: the detector and its cross-view clustering.
        describer, text: describer backend and text embedder spec for the text filter.
        text_filter: the selection rule.
        device: device of the models.
        progress: progress bars on stderr.
        propagate: False outputs the kept trajectories with the concept tracker's own boxes
            instead of SAM2's propagated ones (``raysys baseline filtered``; not a row of
            the paper): no SAM2 is built and ``sam2`` is not used.

    Returns:
        summary: counts, kept ids and similarities per expression (``kept``), every
        trajectory's similarity (``similarities``; global ids as in the concept
        baseline's predictions, which come from the same tracklets and clustering),
        SAM2 weights, timings.
    """
    from tqdm.auto import tqdm

    from raysys.backends import DESCRIBER_BACKENDS, build_text_embedder

    t_start = time.perf_counter()
    times = {}
    queries, views, cats = _plan(layout)
    source = TrackletSource(layout, label_dir, tracker=tracker, reid=reid, device=device)
    tracker_obj = None
    if propagate:
        tracker_obj = sam2 if isinstance(sam2, Sam2VideoTracker) else sam2.build(device)
    desc_model = DESCRIBER_BACKENDS.build(describer, device=device)
    embedder = build_text_embedder(text, device=device)
    # 1-2. trajectories, descriptions, selection
    t0 = time.perf_counter()
    ids: dict[tuple[str, str], SceneIdentities] = {}
    descs: dict[tuple[str, str], dict[int, str]] = {}
    for key in tqdm(sorted({(q.scene, cats[q.name]) for q in queries}), disable=not progress,
                    desc="detect + describe (scene, category)"):
        ids[key] = scene_identities(source, key[0], views[key[0]], key[1], threshold)
        dirs = {v: layout.view_dir(key[0], v) for v in views[key[0]]}
        descs[key] = describe_trajectories(ids[key], dirs, desc_model, text_filter.max_crops)
    times["detect_describe_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    all_desc = [(k, g, s) for k, d in descs.items() for g, s in d.items()]
    kept, sims_out, sims_all = _text_filter(queries, cats, all_desc, embedder, text_filter)
    times["text_filter_s"] = time.perf_counter() - t0
    common = {"pred_root": str(pred_root), "expressions": len(queries),
              "scenes": len({q.scene for q in queries}), "source": source.source,
              "threshold": threshold, "text_filter": dataclasses.asdict(text_filter),
              "kept": sims_out, "similarities": sims_all, "categories": cats,
              "descriptions": {f"{k[0]}/{k[1]}/{g}": s for k, g, s in all_desc}}
    if not propagate:  # the kept trajectories with the tracker's own boxes
        for q in queries:
            rows = ids[(q.scene, cats[q.name])].rows(views[q.scene])
            keep = list(kept[q.name])
            crtrack.write_expression_pred(pred_root, q.name, {
                v: r[np.isin(r[:, 1].astype(int), keep)] for v, r in rows.items()})
        return {"baseline": "filtered", **common, "timings": {**times,
                "track_s": source.track_s}, "seconds": time.perf_counter() - t_start}
    # 3. SAM2 propagation of every tracklet some expression keeps, one video per view
    t0 = time.perf_counter()
    extra = _propagate_and_write(tracker_obj, layout, pred_root, queries, cats, ids, views,
                                 kept, progress)
    times["sam2_s"] = time.perf_counter() - t0
    return {"baseline": "sam2", **common, "sam2_weights": tracker_obj.weights,
            "sam2_image_size": tracker_obj.image_size, **extra,
            "timings": {**times, "track_s": source.track_s},
            "seconds": time.perf_counter() - t_start}
