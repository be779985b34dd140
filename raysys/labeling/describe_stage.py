"""Stage 1, step 3: descriptions per trajectory and their text embeddings (Ray Data).

One row per (scene, stage): an actor (describer + text embedder loaded once) samples up to
``max_crops`` crops per trajectory spread over its views and frames, reads each needed
frame once, describes every trajectory (its full sentence and, where the describer offers
them, the more general sentences it implies) and embeds the full sentences, and writes
``scenes/<scene>/descriptions-<stage>.parquet`` atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from raysys.backends.describer import describe_levels
from raysys.config import from_dict
from raysys.io import storage
from raysys.io.video import VideoFrames
from raysys.labeling.config import LabelConfig
from raysys.labeling.scene_stage import read_stage
from raysys.labeling.tracking_stage import crop

__all__ = ["DescribeUDF", "descriptions_path", "describe_stage_file", "sample_crops"]


def descriptions_path(out: Path, scene: str, stage: str) -> Path:
    return storage.path(out) / "scenes" / scene / f"descriptions-{stage}.parquet"


def sample_crops(tracklets, max_crops: int) -> list[tuple[str, int, int]]:
    """(view, tracklet index, frame index) samples of one trajectory, spread evenly over
    its views and over time within each view.

    Each view gets an equal share of ``max_crops`` (however many tracklets the view's
    track is split into, so that one person is read alike at every stage); within a view,
    the most confident, largest boxes (they show the attributes best; the best third of
    them, at least the share) are sampled evenly in time."""
    views = sorted({t.view for t in tracklets})
    if not views or max_crops <= 0:
        return []
    out = []
    for i, view in enumerate(views):
        share = max_crops // len(views) + (i < max_crops % len(views))
        if share <= 0:
            continue
        cand = [(int(t.frames[k]), ti, k,
                 float(t.boxes[k, 2] * t.boxes[k, 3] * max(float(t.scores[k]), 0.1)))
                for ti, t in enumerate(tracklets) if t.view == view for k in range(len(t))]
        best = sorted(cand, key=lambda c: -c[3])[: max(share, len(cand) // 3)]
        best.sort()  # in time
        pick = np.unique(np.linspace(0, len(best) - 1, min(share, len(best))).round().astype(int))
        out += [(view, best[j][1], best[j][2]) for j in pick.tolist()]
    return out


def describe_stage_file(stage_file: Path, view_dirs: dict[str, str], describer, embedder,
                        max_crops: int
                        ) -> tuple[list[int], list[str], np.ndarray, list[str], list[list[str]]]:
    """Describe every trajectory of a stage file: (gids, texts, (n, d) embeddings, cats,
    general), ``general`` being each trajectory's more general sentences (empty lists for a
    describer without ``describe_levels``)."""
    rows = read_stage(stage_file)
    by_gid: dict[int, list] = {}
    for g, t in rows:
        by_gid.setdefault(g, []).append(t)
    gids = sorted(by_gid)
    samples = {g: sample_crops(by_gid[g], max_crops) for g in gids}
    need: dict[tuple[str, int], list] = {}
    for g in gids:
        for view, ti, k in samples[g]:
            need.setdefault((view, int(by_gid[g][ti].frames[k])), []).append((g, ti, k))
    crops: dict[int, list] = {g: [] for g in gids}
    masks: dict[int, list] = {g: [] for g in gids}
    ctx_of = getattr(describer, "frame_context", None)  # a describer that reads the frame
    contexts: dict[int, list] | None = {g: [] for g in gids} if callable(ctx_of) else None
    videos: dict[str, VideoFrames] = {}
    scene = rows[0][1].scene if rows else ""
    for (view, frame), items in sorted(need.items()):
        if view not in videos:
            videos[view] = VideoFrames(scene, view, view_dirs[view])
        img = videos[view][videos[view].index_of(frame)]
        ctx = ctx_of(img) if contexts is not None else None
        for g, ti, k in items:
            t = by_gid[g][ti]
            m = t.masks[k].decode() if t.masks else None
            c, cm = crop(img, t.boxes[k], m)
            crops[g].append(c)
            masks[g].append(cm)
            if contexts is not None:
                contexts[g].append(ctx)
    cats = [by_gid[g][0].category for g in gids]
    levels = [describe_levels(describer, crops[g],
                              masks[g] if all(m is not None for m in masks[g]) else None, c,
                              contexts[g] if contexts is not None else None)
              for g, c in zip(gids, cats, strict=True)]
    texts = [lv[0] for lv in levels]
    emb = embedder.embed(texts) if texts else np.zeros((0, 1), np.float32)
    return gids, texts, np.asarray(emb, np.float32), cats, [lv[1:] for lv in levels]


class DescribeUDF:
    """Ray Data class UDF over rows (scene, stage, stage_file, view_dirs as JSON)."""

    def __init__(self, cfg_dict: dict, out: str,
                 loader: Callable[[LabelConfig], tuple] | None = None):
        self.cfg = from_dict(LabelConfig, cfg_dict)
        self.out = storage.path(out)
        self.describer, self.embedder = (loader or _build)(self.cfg)

    def __call__(self, batch: dict) -> dict:
        import json

        import pyarrow as pa

        from raysys.io.tables import write_table

        done = {"scene": [], "stage": [], "trajectories": []}
        for i in range(len(batch["scene"])):
            scene, stage = str(batch["scene"][i]), str(batch["stage"][i])
            if descriptions_path(self.out, scene, stage).exists():  # a task re-run
                continue
            gids, texts, emb, cats, general = describe_stage_file(
                storage.path(str(batch["stage_file"][i])), json.loads(str(batch["view_dirs"][i])),
                self.describer, self.embedder, self.cfg.grouping.max_crops)
            table = pa.table({
                "global_id": pa.array(gids, pa.int64()), "category": cats, "text": texts,
                "general": pa.array(general, pa.list_(pa.string())),
                "embedding": pa.array(list(emb), pa.list_(pa.float32()))})
            write_table(table, descriptions_path(self.out, scene, stage))
            done["scene"].append(scene)
            done["stage"].append(stage)
            done["trajectories"].append(len(gids))
        return {k: np.array(v) for k, v in done.items()}


def _build(cfg: LabelConfig):
    from raysys.backends import DESCRIBER_BACKENDS, build_text_embedder

    describer = DESCRIBER_BACKENDS.build(cfg.describer, device=cfg.device,
                                         **cfg.describer_options)
    return describer, build_text_embedder(cfg.text, device=cfg.device)
