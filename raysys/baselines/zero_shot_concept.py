"""Zero-shot baseline "SAM3" of the paper's Table 1: concept tracking + ReID clustering.

For each expression ``<Scene>_<text>`` of a split, the concept tracker is prompted with the
*category* the text is about (:func:`expression_category`: keywords, ``person`` as
fallback), each single-view tracklet is embedded by the ReID model (mean of its frame
embeddings, Eq. 1), and the tracklets of all views are clustered into global identities
(:func:`raysys.baselines.clustering.cluster_tracklets`). Every tracked object of the
category is output for the expression: no language is used beyond the category, so all
expressions about persons of one scene get the same prediction.

Per (scene, view, category) tracklets and frame embeddings come from
:class:`TrackletSource`: either a Stage 1 output folder made from the same data with the
same backends (its ``units/``, which hold exactly what tracking would give again), or the
backends run here, serially.

Only the frames, the scene category labels and the *names* of the expression folders
(the queries) are read; GT rows are left to ``raysys eval``.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysys.baselines.clustering import cluster_tracklets
from raysys.io import crtrack
from raysys.io.dataset import DatasetLayout
from raysys.types import Tracklet

__all__ = ["CATEGORY_KEYWORDS", "expression_category", "list_queries", "TrackletSource",
           "SceneIdentities", "scene_identities", "run_zero_shot_concept"]

# words naming each category (lower case); a category's own name and plural always count
CATEGORY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "person": ("person", "persons", "people", "man", "men", "woman", "women", "pedestrian",
               "pedestrians", "boy", "girl", "child", "children", "kid", "lady", "guy",
               "cyclist", "rider", "someone", "player"),
    "car": ("car", "cars", "vehicle", "vehicles", "sedan", "suv", "taxi", "van", "truck"),
    "bicycle": ("bicycle", "bicycles", "bike", "bikes"),
}
DEFAULT_THRESHOLD = 0.6  # average cosine of stripes-ReID embeddings for a merge


def expression_category(text: str, categories: list[str] | tuple[str, ...],
                        fallback: str = "person") -> str:
    """The category an expression is about: the scene category named first in the text.

    The subject of a referring expression comes first ("A person riding a bicycle" is a
    person), so among the scene's categories whose keywords (:data:`CATEGORY_KEYWORDS`,
    whole words) occur, the earliest wins. With no keyword, ``fallback``.
    """
    words = re.findall(r"[a-z]+", text.lower())
    best, best_pos = None, len(words)
    for cat in categories:
        keys = {cat.lower(), cat.lower() + "s", *CATEGORY_KEYWORDS.get(cat.lower(), ())}
        pos = next((i for i, w in enumerate(words) if w in keys), None)
        if pos is not None and pos < best_pos:
            best, best_pos = cat, pos
    return best if best is not None else fallback


def list_queries(layout: DatasetLayout) -> list[crtrack.ExpressionDir]:
    """The split's queries: the ``<Scene>_<expression>`` folder names (no GT rows read)."""
    return crtrack.list_expressions(layout.gt_root)


def scene_categories(layout: DatasetLayout, scene: str) -> list[str]:
    f = layout.categories_file(scene)
    if not f.is_file():
        raise FileNotFoundError(f"category labels missing: {f}; each scene needs "
                                '{"categories": ["person", ...]}')
    return list(json.loads(f.read_text())["categories"])


class TrackletSource:
    """Single-view tracklets and their (len, d) frame embeddings per (scene, view, category).

    Args:
        layout: the data.
        label_dir: a Stage 1 output folder (``raysys label --out``) made from ``layout``
            with the same tracker and ReID backends: its unit files are read instead of
            tracking again. None runs the backends here.
        tracker, reid: backend names (concept tracker, ReID); options as in ``LabelConfig``.
        device: device of the models (the entrypoint chooses).
        reid_batch: crops per ReID forward pass.
    """

    def __init__(self, layout: DatasetLayout, label_dir: str | os.PathLike | None = None, *,
                 tracker: str = "classical", reid: str = "stripes",
                 tracker_options: dict | None = None, reid_options: dict | None = None,
                 device: str = "cpu", reid_batch: int = 64):
        self.layout = layout
        self.label_dir = Path(label_dir) if label_dir is not None else None
        self.tracker, self.reid = tracker, reid
        self.tracker_options, self.reid_options = dict(tracker_options or {}), dict(
            reid_options or {})
        self.device, self.reid_batch = device, reid_batch
        self._models = None
        self._cache: dict[tuple[str, str, str], tuple[list[Tracklet], list[np.ndarray]]] = {}
        self.track_s = 0.0  # seconds spent tracking + embedding here
        if self.label_dir is not None:
            self._check_label_dir()

    @property
    def source(self) -> str:
        return f"labels:{self.label_dir}" if self.label_dir is not None else "tracked"

    def _check_label_dir(self) -> None:
        f = self.label_dir / "config.json"
        if not f.is_file():
            raise FileNotFoundError(f"{self.label_dir} is not a Stage 1 output folder: {f} "
                                    "missing (make one with `raysys label --out DIR`)")
        have = json.loads(f.read_text())
        lc = have.get("label_config", {})
        want = {"data": str(self.layout.root.resolve()), "domain": self.layout.domain,
                "split": self.layout.split, "tracker": self.tracker, "reid": self.reid,
                "tracker_options": self.tracker_options, "reid_options": self.reid_options}
        got = {"data": have.get("data"), "domain": have.get("domain"),
               "split": have.get("split"), "tracker": lc.get("tracker"), "reid": lc.get("reid"),
               "tracker_options": lc.get("tracker_options", {}),
               "reid_options": lc.get("reid_options", {})}
        bad = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
        if bad:
            diff = "; ".join(f"{k}: labels have {g!r}, wanted {w!r}" for k, (g, w) in bad.items())
            raise ValueError(f"label folder {self.label_dir} does not match this run ({diff}); "
                             "pass labels made from the same --data/--domain/--split with the "
                             "same backends, or leave the labels out to track here")
        from raysys.labeling.record import check_labels_match

        check_labels_match(self.label_dir, self.layout)  # frames changed since: stale labels

    def get(self, scene: str, view: str, category: str):
        """(tracklets, frame embeddings) of one unit, computed or read once."""
        key = (scene, view, category)
        if key not in self._cache:
            self._cache[key] = (self._read(*key) if self.label_dir is not None
                                else self._track(*key))
        return self._cache[key]

    def _read(self, scene, view, category):
        from raysys.labeling.tracking_stage import read_unit, unit_path

        unit = {"scene": scene, "view": view, "category": category}
        f = unit_path(self.label_dir, unit)
        if not f.is_file():
            raise FileNotFoundError(f"label folder {self.label_dir} lacks unit {f.name} "
                                    f"({scene}/{view}, category {category!r}); was Stage 1 "
                                    "run to the end on this split?")
        return read_unit(f)

    def _track(self, scene, view, category):
        from raysys.io.video import VideoFrames
        from raysys.labeling.tracking_stage import embed_tracklets

        if self._models is None:
            from raysys.backends import REID_BACKENDS
            from raysys.backends.concept_tracker import TRACKER_BACKENDS

            self._models = (
                TRACKER_BACKENDS.build(self.tracker, device=self.device, **self.tracker_options),
                REID_BACKENDS.build(self.reid, device=self.device, **self.reid_options))
        tracker, reid = self._models
        t0 = time.perf_counter()
        video = VideoFrames(scene, view, self.layout.view_dir(scene, view))
        tracklets = tracker.track(video, category)
        embs = embed_tracklets(video, tracklets, reid, self.reid_batch)
        self.track_s += time.perf_counter() - t0
        return tracklets, embs


@dataclass(frozen=True)
class SceneIdentities:
    """The tracklets of one (scene, category) over all views and their global ids."""

    scene: str
    category: str
    tracklets: tuple[Tracklet, ...]
    gids: np.ndarray  # (n,) global id per tracklet, 1..K
    frame_embeddings: tuple[np.ndarray, ...]  # n arrays (len(t), d)

    def rows(self, views: list[str]) -> dict[str, np.ndarray]:
        """Prediction rows ``{view: (m, 6) frame, id, x1, y1, x2, y2}`` of every tracklet."""
        out = {v: [] for v in views}
        for t, g in zip(self.tracklets, self.gids, strict=True):
            xyxy = np.concatenate([t.boxes[:, :2], t.boxes[:, :2] + t.boxes[:, 2:]], axis=1)
            out.setdefault(t.view, []).append(
                np.column_stack([t.frames, np.full(len(t), g), xyxy]))
        return {v: np.concatenate(r) if r else np.zeros((0, 6)) for v, r in out.items()}


def scene_identities(source: TrackletSource, scene: str, views: list[str], category: str,
                     threshold: float = DEFAULT_THRESHOLD) -> SceneIdentities:
    """Track (or read) every view of a scene for ``category`` and cluster across views."""
    from raysys.backends.reid import tracklet_embedding

    tracklets, embs = [], []
    for v in views:
        t, e = source.get(scene, v, category)
        tracklets += t
        embs += e
    emb = (np.stack([tracklet_embedding(e) for e in embs]) if tracklets
           else np.zeros((0, 1)))
    gids = cluster_tracklets(np.array([t.view for t in tracklets]), emb,
                             [t.frames for t in tracklets], threshold)
    return SceneIdentities(scene, category, tuple(tracklets), gids, tuple(embs))


def _plan(layout: DatasetLayout):
    """(queries, {scene: views}, {query name: category}) of a split."""
    queries = list_queries(layout)
    views = crtrack.list_image_views(layout.image_root)
    cats = {}
    for q in queries:
        if q.scene not in views:
            raise FileNotFoundError(f"expression {q.name!r}: no {q.scene}_View<k> image "
                                    f"folders under {layout.image_root}")
        cats[q.name] = expression_category(q.text, scene_categories(layout, q.scene))
    return queries, views, cats


def run_zero_shot_concept(layout: DatasetLayout, pred_root: str | os.PathLike, *,
                          label_dir: str | os.PathLike | None = None,
                          tracker: str = "classical", reid: str = "stripes",
                          threshold: float = DEFAULT_THRESHOLD, device: str = "cpu",
                          progress: bool = True) -> dict:
    """Predict every expression of a split with the concept baseline (CRTrack layout).

    Args:
        layout: data (frames, category labels, expression folder names).
        pred_root: output; ``<pred_root>/<Scene>_<expression>/View<k>.txt`` per expression
            and every view of the scene (empty files where nothing is tracked).
        label_dir: a Stage 1 output folder of the same data and backends to reuse.
        tracker, reid: concept tracker and ReID backend names.
        threshold: average cosine for merging clusters of tracklets across views.
        device: device of the models.
        progress: a progress bar on stderr.

    Returns:
        summary: counts, identities per (scene, category), timings, source.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    queries, views, cats = _plan(layout)
    source = TrackletSource(layout, label_dir, tracker=tracker, reid=reid, device=device)
    ids: dict[tuple[str, str], SceneIdentities] = {}
    for q in tqdm(queries, desc="concept baseline", disable=not progress):
        key = (q.scene, cats[q.name])
        if key not in ids:
            ids[key] = scene_identities(source, q.scene, views[q.scene], key[1], threshold)
        crtrack.write_expression_pred(pred_root, q.name, ids[key].rows(views[q.scene]))
    return {
        "baseline": "concept", "pred_root": str(pred_root), "expressions": len(queries),
        "scenes": len({q.scene for q in queries}), "source": source.source,
        "tracker": tracker, "reid": reid, "threshold": threshold,
        "categories": {q.name: cats[q.name] for q in queries},
        "identities": {f"{s}/{c}": int(i.gids.max()) if i.gids.size else 0
                       for (s, c), i in ids.items()},
        "tracklets": sum(len(i.tracklets) for i in ids.values()),
        "track_s": source.track_s, "seconds": time.perf_counter() - t0,
    }
