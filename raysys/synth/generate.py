"""Write a synthetic dataset in the CRTrack layout (see :mod:`raysys.io.dataset`).

``plan_scenes(cfg)`` lists the scenes; ``render_scene(spec, root)`` renders and writes one
(picklable, independent of the others: its randomness comes from
``SeedSequence([seed, domain, split, index])``); ``generate(cfg, root, map_fn)`` does all of
them through any ``map_fn(fn, items)`` - serial by default, Ray tasks in the jobs.

Per (domain, split, scene)::

    images/<split>/<Scene>_View<k>/000001.jpg          frames (written to a temp dir, renamed)
    labels/<split>/<Scene>.json                         {"categories": [...]}
    gt/sorted_gt_<split>_<domain>/<Scene>_<expr>/gt/View<k>.txt   expression GT (all views)
    meta/<split>/<Scene>/calibration.json               K, R, t, colour response per view
    meta/<split>/<Scene>/objects.json                   per global id: category, attributes
    meta/<split>/<Scene>/expressions.json               text, ids, attribute query
    meta/<split>/<Scene>/tracks/View<k>.txt             all-object GT boxes (MOT rows)
    meta/<split>/<Scene>/masks/View<k>.parquet          boxes + visible masks (RLE strings)
    meta/<split>/<Scene>/trajectories.parquet           ground positions per frame
    meta/<split>/<Scene>/done.json                      written last: the scene is complete
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysys.config import to_dict
from raysys.io.crtrack import atomic_write_text, expression_folder_name, write_gt_file
from raysys.io.dataset import DOMAINS, SPLITS, DatasetLayout
from raysys.io.jsonio import json_text
from raysys.synth.attributes import PersonAttributes
from raysys.synth.background import world_extent
from raysys.synth.camera import Camera, make_rig
from raysys.synth.config import SynthConfig, check_limits
from raysys.synth.expressions import Query, select_expressions
from raysys.synth.figures import Figure, bicycle_figure, car_figure, person_figure
from raysys.synth.folder import (
    DatasetConfigError,
    DiskFullError,
    check_root,
    raise_if_disk_full,
    read_json,
)
from raysys.synth.render import ObjectView, ViewRenderer
from raysys.synth.world import World, WorldObject, make_world

__all__ = ["VERSION", "SceneSpec", "ScenePlan", "DatasetConfigError", "DiskFullError",
           "plan_scenes", "plan_scene", "render_scene", "generate", "serial_map",
           "config_fingerprint"]

VERSION = "raysys-synth/2"  # 2: the expression mix of issue #20 (same config, other expressions)
MapFn = Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]]


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to render one scene (picklable)."""

    config: SynthConfig
    domain: str            # "In-domain" | "Cross-domain"
    split: str             # "train" | "test"
    index: int             # 0-based within (domain, split)
    name: str              # scene name, no '_'

    @property
    def entropy(self) -> list[int]:
        return [self.config.seed, DOMAINS.index(self.domain), SPLITS.index(self.split),
                self.index]

    def layout(self, root: str | os.PathLike) -> DatasetLayout:
        return DatasetLayout(Path(root), self.domain, self.split)


def config_fingerprint(cfg: SynthConfig) -> str:
    blob = json.dumps({"version": VERSION, "config": to_dict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def plan_scenes(cfg: SynthConfig) -> list[SceneSpec]:
    """All scenes of ``cfg``: names ``<Theme><Train|Test><nn>`` (train/test disjoint)."""
    out = []
    for domain in cfg.domains:
        themes = cfg.rig(domain).themes
        for split in cfg.splits:
            for i in range(cfg.scenes):
                name = f"{themes[i % len(themes)]}{split.capitalize()}{i + 1:02d}"
                out.append(SceneSpec(cfg, domain, split, i, name))
    return out


@dataclass(frozen=True)
class ScenePlan:
    """One scene before rendering: its world, its cameras and the random streams left.

    ``plan_scene(spec)`` is cheap (no pixels), so the people and the expressions of a
    scene can be studied without rendering it; :func:`render_scene` renders the same plan.
    """

    spec: SceneSpec
    world: World
    cameras: list[Camera]
    expression_seed: np.random.SeedSequence  # draws the expressions
    noise: np.random.SeedSequence  # draws the sensor noise of the frames

    def people(self, visible: set[int] | None = None) -> dict[int, PersonAttributes]:
        """Global id -> attributes of the people that can be referred to: those in
        ``visible`` (ids in some view's GT), or, before rendering, everyone in the world."""
        return {o.gid: o.attributes for o in self.world.objects
                if o.category == "person" and (visible is None or o.gid in visible)}

    def expressions(self, visible: set[int] | None = None
                    ) -> list[tuple[Query, tuple[int, ...]]]:
        """The scene's expressions (:func:`select_expressions`) over :meth:`people`."""
        people = self.people(visible)
        return select_expressions(np.random.default_rng(self.expression_seed), people,
                                  self.spec.config.expressions) if people else []


def plan_scene(spec: SceneSpec) -> ScenePlan:
    """The world and cameras of one scene, drawn from its seed (nothing rendered)."""
    cfg = spec.config
    s_world, s_cams, s_expr, s_noise = np.random.SeedSequence(spec.entropy).spawn(4)
    rig = cfg.rig(spec.domain)
    theme = rig.themes[spec.index % len(rig.themes)]
    world = make_world(np.random.default_rng(s_world), cfg, rig, theme)
    cams = make_rig(np.random.default_rng(s_cams), rig, cfg.num_views(spec.domain),
                    cfg.width, cfg.height)
    return ScenePlan(spec, world, cams, s_expr, s_noise)


def _pose(o: WorldObject, t: int) -> Figure:
    tr = o.track
    x, y, h = float(tr.x[t]), float(tr.y[t]), float(tr.heading[t])
    if o.category == "person":
        return person_figure(o.attributes, x, y, h, float(tr.phase[t]), float(tr.stride[t]))
    if o.category == "car":
        return car_figure(o.rgb, x, y, h)
    return bicycle_figure(o.rgb, x, y, h)


def _render_frames(spec: SceneSpec, world: World, cams: list[Camera], tmp: Path,
                   noise: np.random.SeedSequence) -> list[list[tuple[int, ObjectView]]]:
    """Render and write every frame of every view into ``tmp/View<k>/``; returns the
    object views per view as (frame, ObjectView)."""
    cfg = spec.config
    extent = world_extent(world, cams)
    rends = [ViewRenderer(world, c, extent, cfg.min_visible_fraction, cfg.min_visible_pixels)
             for c in cams]
    rngs = [np.random.default_rng(s) for s in noise.spawn(len(cams))]
    records: list[list[tuple[int, ObjectView]]] = [[] for _ in cams]
    params = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    for t in range(cfg.frames):
        objs = [(o.gid, _pose(o, t)) for o in world.objects if o.track.present[t]]
        for v, r in enumerate(rends):
            img, views = r.render(objs, rngs[v])
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), params)
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for {spec.name} {cams[v].name}")
            (tmp / cams[v].name / f"{t + 1:06d}.jpg").write_bytes(buf.tobytes())
            records[v].extend((t + 1, ov) for ov in views)
    return records


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json_text(obj, indent=1, default=None))


def _gt_rows(recs: list[tuple[int, ObjectView]], ids: set[int] | None = None) -> np.ndarray:
    rows = [(f, ov.gid, *ov.box) for f, ov in recs
            if ov.in_gt and (ids is None or ov.gid in ids)]
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def _masks_table(recs: list[tuple[int, ObjectView]], cats: dict[int, str], cam: Camera
                 ) -> pa.Table:
    gt = [(f, ov) for f, ov in recs if ov.in_gt]
    gt.sort(key=lambda r: (r[0], r[1].gid))
    size = f"{cam.height}x{cam.width}:"
    return pa.table({
        "frame": pa.array([f for f, _ in gt], pa.int32()),
        "id": pa.array([ov.gid for _, ov in gt], pa.int32()),
        "category": pa.array([cats[ov.gid] for _, ov in gt], pa.string()),
        "left": pa.array([ov.box[0] for _, ov in gt], pa.int32()),
        "top": pa.array([ov.box[1] for _, ov in gt], pa.int32()),
        "width": pa.array([ov.box[2] for _, ov in gt], pa.int32()),
        "height": pa.array([ov.box[3] for _, ov in gt], pa.int32()),
        "visible_fraction": pa.array([ov.visible_fraction for _, ov in gt], pa.float32()),
        "in_image_fraction": pa.array([ov.in_image_fraction for _, ov in gt], pa.float32()),
        "rle": pa.array([size + " ".join(map(str, ov.counts)) for _, ov in gt], pa.string()),
    })


def _trajectories_table(world: World) -> pa.Table:
    cols: dict[str, list] = {"frame": [], "id": [], "x": [], "y": [], "heading": []}
    for o in world.objects:
        idx = np.flatnonzero(o.track.present)
        cols["frame"] += (idx + 1).tolist()
        cols["id"] += [o.gid] * len(idx)
        for k in ("x", "y", "heading"):
            cols[k] += getattr(o.track, k)[idx].tolist()
    return pa.table({"frame": pa.array(cols["frame"], pa.int32()),
                     "id": pa.array(cols["id"], pa.int32()),
                     "x": pa.array(cols["x"], pa.float32()),
                     "y": pa.array(cols["y"], pa.float32()),
                     "heading": pa.array(cols["heading"], pa.float32())})


def _move_images(tmp: Path, lay: DatasetLayout, name: str, cams: list[Camera]) -> None:
    lay.image_root.mkdir(parents=True, exist_ok=True)
    for c in cams:
        final = lay.view_dir(name, c.name)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp / c.name, final)
    shutil.rmtree(tmp)


def _summary(spec: SceneSpec, world: World, records, exprs) -> dict[str, Any]:
    people = {o.gid for o in world.objects if o.category == "person"}
    seen = [ov for recs in records for _, ov in recs if ov.gid in people]
    gt = [ov for ov in seen if ov.in_gt]
    return {
        "domain": spec.domain, "split": spec.split, "scene": spec.name,
        "views": len(records), "frames": spec.config.frames,
        "objects": len(world.objects), "people": len(people),
        "expressions": len(exprs),
        "ids_per_expression": [len(ids) for _, ids in exprs],
        "person_boxes": len(gt),
        "person_hidden": len(seen) - len(gt),            # reach the image, below threshold
        "person_partial": sum(ov.visible_fraction < 0.9 for ov in gt),
    }


def _write_scene_meta(spec, lay: DatasetLayout, world: World, cams, records, exprs) -> None:
    meta = lay.meta_dir(spec.name)
    cats = {o.gid: o.category for o in world.objects}
    _write_json(meta / "calibration.json", {
        "units": "metres; ground plane z = 0; world z up",
        "area": list(world.area), "sun_azimuth": world.sun_azimuth,
        "sun_elevation": world.sun_elevation, "views": [c.to_dict() for c in cams]})
    in_gt = {v.name: {} for v in cams}
    for c, recs in zip(cams, records, strict=True):
        for _, ov in recs:
            if ov.in_gt:
                in_gt[c.name][ov.gid] = in_gt[c.name].get(ov.gid, 0) + 1
        write_gt_file(meta / "tracks" / f"{c.name}.txt", _gt_rows(recs))
        _atomic_parquet(_masks_table(recs, cats, c), meta / "masks" / f"{c.name}.parquet")
    _atomic_parquet(_trajectories_table(world), meta / "trajectories.parquet")
    objects = [{"id": o.gid, "category": o.category, "colour": o.colour,
                "attributes": o.attributes.to_dict() if o.attributes else None,
                "frames_present": int(o.track.present.sum()),
                "frames_in_gt": {c.name: in_gt[c.name].get(o.gid, 0) for c in cams}}
               for o in world.objects]
    _write_json(meta / "objects.json", {"scene": spec.name, "domain": spec.domain,
                                        "split": spec.split, "objects": objects,
                                        "occluders": [o.kind for o in world.occluders]})
    _write_json(meta / "expressions.json", [
        {"text": q.text, "folder": expression_folder_name(spec.name, q.text),
         "ids": list(ids), "query": q.to_dict()} for q, ids in exprs])
    present = sorted({cats[g] for d in in_gt.values() for g in d})
    _write_json(lay.categories_file(spec.name), {"categories": present})


def _write_expressions(spec: SceneSpec, lay: DatasetLayout, cams, records, exprs) -> None:
    if lay.gt_root.is_dir():
        for old in lay.gt_root.glob(f"{spec.name}_*"):
            shutil.rmtree(old)
    for q, ids in exprs:
        folder = lay.gt_root / expression_folder_name(spec.name, q.text) / "gt"
        for c, recs in zip(cams, records, strict=True):
            write_gt_file(folder / f"{c.name}.txt", _gt_rows(recs, set(ids)))


def render_scene(spec: SceneSpec, root: str | os.PathLike) -> dict[str, Any]:
    """Render and write one scene (skipped when its ``done.json`` matches the config).

    Returns:
        The scene summary (counts of boxes, hidden/partial boxes, expressions) plus
        ``"skipped": True`` when nothing had to be done.
    """
    cfg, root = spec.config, Path(root)
    lay = spec.layout(root)
    done = lay.meta_dir(spec.name) / "done.json"
    fp = config_fingerprint(cfg)
    if done.is_file():
        d = read_json(done)  # unreadable (a crash while writing it): render again
        if isinstance(d, dict) and d.get("fingerprint") == fp and "summary" in d:
            return {**d["summary"], "skipped": True}
        done.unlink()
    plan = plan_scene(spec)
    world, cams = plan.world, plan.cameras
    tmp = root / ".tmp" / f"{spec.domain}-{spec.split}-{spec.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for c in cams:
        (tmp / c.name).mkdir(parents=True)
    records = _render_frames(spec, world, cams, tmp, plan.noise)
    visible = {ov.gid for recs in records for _, ov in recs if ov.in_gt}
    exprs = plan.expressions(visible)
    _move_images(tmp, lay, spec.name, cams)
    _write_scene_meta(spec, lay, world, cams, records, exprs)
    _write_expressions(spec, lay, cams, records, exprs)
    summary = _summary(spec, world, records, exprs)
    _write_json(done, {"version": VERSION, "fingerprint": fp, "summary": summary})
    return {**summary, "skipped": False}


def serial_map(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """The default ``map_fn``: one item after the other, with a progress bar."""
    from tqdm import tqdm

    with tqdm(items, desc="synth scenes", unit="scene") as bar:  # closed before an error
        return [fn(x) for x in bar]


def _manifest(cfg: SynthConfig, specs: list[SceneSpec], complete: bool) -> dict[str, Any]:
    return {"version": VERSION, "seed": cfg.seed, "config": to_dict(cfg),
            "complete": complete,
            "scenes": [{"domain": s.domain, "split": s.split, "scene": s.name,
                        "views": [f"View{k + 1}" for k in range(cfg.num_views(s.domain))]}
                       for s in specs]}


def generate(cfg: SynthConfig, root: str | os.PathLike, map_fn: MapFn | None = None, *,
             allow_large: bool = False) -> dict[str, Any]:
    """Generate the whole dataset of ``cfg`` under ``root``.

    Args:
        cfg: the dataset configuration (including the seed).
        root: output folder: new, empty, or a dataset of the same config (finished
            scenes are skipped, unfinished ones rendered again).
        map_fn: ``map_fn(fn, items) -> iterable of results``; default :func:`serial_map`.
            ``fn`` is a picklable top-level function, so Ray tasks or a process pool work.
        allow_large: lift :data:`raysys.synth.config.LIMITS` (checked before anything is
            written).

    Returns:
        ``{"root", "rendered", "skipped", "scenes": [summary per scene]}``.

    Raises:
        DatasetConfigError: ``root`` holds something else, is a file, or its
            ``dataset.json`` is corrupt.
        SynthLimitError: ``cfg`` is beyond the limits and not ``allow_large``.
        DiskFullError: the disk filled up; unfinished scenes are removed and
            ``dataset.json`` keeps ``"complete": false`` (a re-run resumes).
    """
    root = Path(root)
    if not allow_large:
        check_limits(cfg)
    check_root(root, to_dict(cfg), VERSION)
    specs = plan_scenes(cfg)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "dataset.json").is_file():
            _write_json(root / "dataset.json", _manifest(cfg, specs, complete=False))
        fn = functools.partial(render_scene, root=str(root))
        results = list((map_fn or serial_map)(fn, specs))
        _write_json(root / "dataset.json", _manifest(cfg, specs, complete=True))
    except OSError as e:
        raise_if_disk_full(e, root, [(s.layout(root), s.name) for s in specs])
        raise
    tmp = root / ".tmp"
    if tmp.is_dir() and not any(tmp.iterdir()):
        tmp.rmdir()
    skipped = sum(bool(r.get("skipped")) for r in results)
    return {"root": str(root), "rendered": len(results) - skipped, "skipped": skipped,
            "scenes": [{k: v for k, v in r.items() if k != "skipped"} for r in results]}
