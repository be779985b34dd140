"""Stage 1, step 2: one stateful actor per scene - association, then re-prompting.

The actor reads its scene's unit files (tracklets + frame embeddings), runs
affinity-guided cross-view association (:mod:`raysys.labeling.association`), then
bi-directional re-prompting (:mod:`raysys.labeling.reprompt`) through its concept tracker,
and writes the trajectories of the three stages that Table 4 scores:

* ``tracklets``: raw single-view tracklets, each its own identity;
* ``association``: + cross-view global ids;
* ``reprompt``: + re-prompting and duplicate resolution (the pseudo labels).

Each stage is a Parquet tracklet table with a ``global_id`` column.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from raysys.backends.reid import tracklet_embedding
from raysys.config import from_dict
from raysys.io import storage
from raysys.io.video import VideoFrames
from raysys.labeling.association import associate, resolve_identities
from raysys.labeling.config import LabelConfig
from raysys.labeling.ground_plane import ground_veto
from raysys.labeling.reprompt import reprompt_scene
from raysys.labeling.tracking_stage import read_unit
from raysys.types import Tracklet

__all__ = ["STAGES", "SceneLabeler", "stage_path", "write_stage", "read_stage"]

STAGES = ("tracklets", "association", "reprompt")


def stage_path(out: Path, scene: str, stage: str) -> Path:
    return storage.path(out) / "scenes" / scene / f"stage-{stage}.parquet"


def write_stage(path: Path, tracklets: list[Tracklet], gids: list[int]) -> None:
    import pyarrow as pa

    from raysys.io.tables import tracklets_to_table, write_table

    table = tracklets_to_table(tracklets)
    col = np.repeat(np.asarray(gids, np.int64), [len(t) for t in tracklets])
    write_table(table.append_column("global_id", pa.array(col, pa.int64())), path)


def read_stage(path: Path) -> list[tuple[int, Tracklet]]:
    """[(global id, tracklet)] of a stage file."""
    from raysys.io.tables import read_table, table_to_tracklets

    table = read_table(path)
    df = table.to_pandas()
    gid_of = {(r.view, r.local_id): int(r.global_id)
              for r in df[["view", "local_id", "global_id"]].drop_duplicates().itertuples()}
    return [(gid_of[(t.view, t.local_id)], t) for t in table_to_tracklets(table)]


class SceneLabeler:
    """Association + re-prompting of one scene (a Ray actor in the pipeline).

    Args:
        scene: scene name.
        view_dirs: {view: image folder} of the scene.
        cfg_dict: :class:`LabelConfig` as a dict.
        out: labeling output folder.
        tracker_loader: builds the concept tracker for re-prompting (injectable).
    """

    def __init__(self, scene: str, view_dirs: dict[str, str], cfg_dict: dict, out: str,
                 tracker_loader: Callable[[LabelConfig], object] | None = None):
        self.scene, self.view_dirs, self.out = scene, view_dirs, storage.path(out)
        self.cfg = from_dict(LabelConfig, cfg_dict)
        self._loader = tracker_loader
        self._tracker = None

    def tracker(self):
        if self._tracker is None:
            if self._loader is not None:
                self._tracker = self._loader(self.cfg)
            else:
                from raysys.backends.concept_tracker import TRACKER_BACKENDS

                self._tracker = TRACKER_BACKENDS.build(
                    self.cfg.tracker, device=self.cfg.device, **self.cfg.tracker_options)
        return self._tracker

    def run(self, unit_files: list[str]) -> dict:
        """Run both steps for the scene's categories; returns per-stage counts/timings."""
        t0 = time.perf_counter()
        tracklets, embs = [], []
        for f in sorted(unit_files):
            t, e = read_unit(storage.path(f))
            tracklets += t
            embs += e
        # unit files number tracklets per (view, category): make ids unique per scene
        tracklets = [_relabel(t, k + 1) for k, t in enumerate(tracklets)]
        stats = {"scene": self.scene, "tracklets": len(tracklets)}
        # stage "tracklets": every tracklet is its own identity
        write_stage(stage_path(self.out, self.scene, "tracklets"), tracklets,
                    list(range(1, len(tracklets) + 1)))
        final_t, final_g, assoc_t, assoc_g = [], [], [], []
        next_gid = 1
        for cat in sorted({t.category for t in tracklets}):
            idx = [i for i, t in enumerate(tracklets) if t.category == cat]
            tl = [tracklets[i] for i in idx]
            fe = [embs[i] for i in idx]
            emb = np.stack([tracklet_embedding(e) for e in fe]) if tl else np.zeros((0, 1))
            views = np.array([t.view for t in tl])
            spans = [t.frames for t in tl]
            gids, matches = associate(views, emb, spans, self.cfg.association)
            # checked on the ground plane (a no-op when switched off)
            matches, g_stats = ground_veto(tl, gids, matches, self.cfg.ground_plane)
            if g_stats["vetoed"] or g_stats["attached"]:
                gids = resolve_identities(matches, views, spans, self.cfg.association)
            stats.update({f"ground_{k}_{cat}": v for k, v in g_stats.items()})
            assoc_t += tl
            assoc_g += (gids + next_gid - 1).tolist()
            t1 = time.perf_counter()
            per_id = reprompt_scene(tl, fe, emb, gids, self._repropagate(cat),
                                    self.cfg.reprompt)
            stats[f"reprompt_s_{cat}"] = time.perf_counter() - t1
            for g, views in per_id.items():
                for t in views.values():
                    final_t.append(t)
                    final_g.append(g + next_gid - 1)
            next_gid += max(len(per_id), int(gids.max()) if gids.size else 0)
        write_stage(stage_path(self.out, self.scene, "association"), assoc_t, assoc_g)
        # local ids must be unique per view within a stage file
        final_t = [_relabel(t, k + 1) for k, t in enumerate(final_t)]
        write_stage(stage_path(self.out, self.scene, "reprompt"), final_t, final_g)
        stats.update(identities_association=len(set(assoc_g)),
                     identities_reprompt=len(set(final_g)), seconds=time.perf_counter() - t0)
        return stats

    def _repropagate(self, category: str):
        videos: dict[str, VideoFrames] = {}

        def fn(view, seed_frame, seed_mask, direction):
            if view not in videos:
                videos[view] = VideoFrames(self.scene, view, self.view_dirs[view])
            return self.tracker().repropagate(videos[view], seed_frame, seed_mask, direction,
                                              category)
        return fn


def _relabel(t: Tracklet, local_id: int) -> Tracklet:
    return Tracklet(t.scene, t.view, local_id, t.category, t.frames, t.boxes, t.scores, t.masks)
