"""Tests of the synthetic benchmark generator (raysys.synth) and ``raysys synth``.

One tiny dataset (2 In-domain scenes per split, 3 views, 16 frames, 320x180, 10 people) is
generated once per module and checked for layout, GT consistency, visibility and
expressions.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from raysys.cli import main
from raysys.config import from_dict, to_dict
from raysys.io.crtrack import list_expressions, list_frames, list_image_views, read_gt_file
from raysys.io.dataset import DatasetLayout
from raysys.synth import DatasetConfigError, SynthConfig, generate, plan_scenes, render_scene
from raysys.synth.attributes import PersonAttributes
from raysys.synth.expressions import Query
from raysys.synth.render import rle_counts
from raysys.types import MaskRLE

TINY = SynthConfig(scenes=2, frames=16, width=320, height=180, people=10,
                   domains=("In-domain",))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "ds"
    generate(TINY, root, map_fn=lambda fn, items: [fn(x) for x in items])
    return root


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _layouts(root: Path) -> list[DatasetLayout]:
    return DatasetLayout.available(root)


def _scenes(lay: DatasetLayout) -> list[str]:
    return sorted(list_image_views(lay.image_root))


# ----------------------------------------------------------------------------- units


def test_config_validates_and_round_trips():
    with pytest.raises(ValueError, match="views"):
        SynthConfig(views=0)
    with pytest.raises(ValueError, match="splits"):
        SynthConfig(splits=("val",))
    with pytest.raises(ValueError, match="min_visible_fraction"):
        SynthConfig(min_visible_fraction=1.5)
    cfg = SynthConfig(seed=3, splits=("test",))
    assert from_dict(SynthConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


@pytest.mark.parametrize("x0,y0", [(0, 0), (3, 2), (7, 5)])
def test_rle_counts_equal_full_encode(x0, y0):
    rng = np.random.default_rng(x0 * 10 + y0)
    crop = rng.random((4, 3)) > 0.5
    crop[0, 0] = True
    full = np.zeros((9, 10), bool)
    full[y0:y0 + 4, x0:x0 + 3] = crop
    assert tuple(rle_counts(crop, x0, y0, 10, 9)) == MaskRLE.encode(full).counts


def _person(**kw) -> PersonAttributes:
    base = dict(top="red", bottom="black", shoes="white", headwear="cap",
                headwear_colour="white", bag="backpack", bag_colour="black", bag_side="left",
                bicycle=False, bicycle_colour=None, inner=None, long_coat=False,
                long_hair=False, height=1.7, build=1.0)
    base.update(kw)
    rgb = (0, 0, 0)
    return PersonAttributes(**base, top_rgb=rgb, bottom_rgb=rgb, shoes_rgb=rgb,
                            headwear_rgb=rgb, bag_rgb=rgb, bicycle_rgb=rgb, inner_rgb=rgb,
                            hair_rgb=rgb, skin_rgb=rgb)


@pytest.mark.parametrize("query,text,match", [
    (Query(top="red"), "A person wearing a red coat", True),
    (Query(top="red", bottom="black"), "A person wearing a red coat and black trousers", True),
    (Query(top="orange"), "A person wearing an orange coat", False),
    (Query(top="red", bottom="black", headwear="cap", headwear_colour="white", bag="backpack"),
     "A person in a white cap, red coat and black trousers, carrying a backpack", True),
    (Query(top="red", bottom="gray", headwear="helmet", headwear_colour="black", bicycle=True),
     "A person in a black helmet, red coat and gray trousers, riding a bicycle", False),
    (Query(bag="handbag"), "A person carrying a handbag", False),
])
def test_query_text_and_matching(query, text, match):
    assert query.text == text
    assert query.matches(_person()) is match


# ----------------------------------------------------------------------------- dataset


def test_layout_and_manifest(data):
    manifest = json.loads((data / "dataset.json").read_text())
    assert manifest["complete"] and manifest["seed"] == TINY.seed
    assert from_dict(SynthConfig, manifest["config"]) == TINY
    lays = _layouts(data)
    assert {(lay.domain, lay.split) for lay in lays} == {("In-domain", "train"),
                                                       ("In-domain", "test")}
    for lay in lays:
        scenes = list_image_views(lay.image_root)
        assert len(scenes) == 2
        for scene, views in scenes.items():
            assert "_" not in scene and views == ["View1", "View2", "View3"]
            for v in views:
                frames = list_frames(lay.view_dir(scene, v))
                assert [f for f, _ in frames] == list(range(1, 17))
                assert frames[0][1].name == "000001.jpg"
            labels = json.loads(lay.categories_file(scene).read_text())
            assert list(labels) == ["categories"] and "person" in labels["categories"]
            assert set(labels["categories"]) <= {"person", "car", "bicycle"}
            meta = lay.meta_dir(scene)
            for name in ("calibration.json", "objects.json", "expressions.json",
                         "trajectories.parquet", "done.json"):
                assert (meta / name).is_file(), name
    assert not (data / ".tmp").exists()


def test_train_test_scenes_disjoint(data):
    train = set(_scenes(DatasetLayout(data, "In-domain", "train")))
    test = set(_scenes(DatasetLayout(data, "In-domain", "test")))
    assert train and test and not train & test


def test_gt_boxes_inside_images(data):
    for lay in _layouts(data):
        for scene in _scenes(lay):
            for f in (lay.meta_dir(scene) / "tracks").glob("View*.txt"):
                rows = read_gt_file(f)
                assert len(rows)
                assert rows[:, 2].min() >= 0 and rows[:, 3].min() >= 0
                assert (rows[:, 2] + rows[:, 4]).max() <= TINY.width
                assert (rows[:, 3] + rows[:, 5]).max() <= TINY.height
                assert rows[:, 4].min() >= 1 and rows[:, 5].min() >= 1


def _project(cam: dict, pts: np.ndarray) -> np.ndarray:
    K, R, t = (np.array(cam[k]) for k in ("K", "R", "t"))
    xc = pts @ R.T + t
    uv = xc @ K.T
    return uv[:, :2] / uv[:, 2:]


def test_global_ids_agree_with_geometry(data):
    """A person in two views carries one id: its ground position (trajectories) projects
    into its GT box in every view where it is fully visible."""
    checked = 0
    for lay in _layouts(data):
        for scene in _scenes(lay):
            meta = lay.meta_dir(scene)
            cams = {c["name"]: c for c in json.loads(
                (meta / "calibration.json").read_text())["views"]}
            traj = pq.read_table(meta / "trajectories.parquet").to_pydict()
            pos = {(f, g): (x, y) for f, g, x, y in
                   zip(traj["frame"], traj["id"], traj["x"], traj["y"], strict=True)}
            objs = {o["id"]: o for o in json.loads((meta / "objects.json").read_text())
                    ["objects"]}
            multi = set()
            per_view = {}
            for v, cam in cams.items():
                t = pq.read_table(meta / "masks" / f"{v}.parquet").to_pydict()
                per_view[v] = {(f, g) for f, g in zip(t["frame"], t["id"], strict=True)}
                for i, (f, g) in enumerate(zip(t["frame"], t["id"], strict=True)):
                    assert objs[g]["category"] == t["category"][i]
                    if t["category"][i] != "person" or t["in_image_fraction"][i] < 0.999:
                        continue
                    u, w = _project(cam, np.array([[*pos[(f, g)], 0.0]]))[0]
                    box = (t["left"][i], t["top"][i], t["width"][i], t["height"][i])
                    assert box[0] - 2 <= u <= box[0] + box[2] + 2, (scene, v, f, g)
                    assert box[1] <= w <= box[1] + box[3] + 3, (scene, v, f, g)
                    checked += 1
            views = list(per_view)
            for a in range(len(views)):
                for b in range(a + 1, len(views)):
                    multi |= per_view[views[a]] & per_view[views[b]]
            assert multi, "nobody is seen by two views at once"
    assert checked > 100


def test_expressions_match_attributes_exactly(data):
    n_specific = n_general = 0
    for lay in _layouts(data):
        folders = {e.name: e for e in list_expressions(lay.gt_root)}
        for scene in _scenes(lay):
            meta = lay.meta_dir(scene)
            objs = json.loads((meta / "objects.json").read_text())["objects"]
            visible = {o["id"]: o for o in objs
                       if o["category"] == "person" and sum(o["frames_in_gt"].values())}
            exprs = json.loads((meta / "expressions.json").read_text())
            texts = [e["text"] for e in exprs]
            assert len(texts) == len(set(texts)) and exprs
            tracks = {v: read_gt_file(meta / "tracks" / f"{v}.txt")
                      for v in ("View1", "View2", "View3")}
            for e in exprs:
                q = Query(**e["query"])
                assert q.text == e["text"] and "/" not in e["text"]
                want = sorted(g for g, o in visible.items()
                              if q.matches(_person(**{k: o["attributes"][k] for k in (
                                  "top", "bottom", "shoes", "headwear", "headwear_colour",
                                  "bag", "bag_colour", "bicycle")})))
                assert e["ids"] == want and want
                n_specific += len(want) == 1
                n_general += len(want) > 1
                folder = folders[e["folder"]].path / "gt"
                assert sorted(p.stem for p in folder.glob("View*.txt")) == list(tracks)
                seen = set()
                for v, all_rows in tracks.items():
                    rows = read_gt_file(folder / f"{v}.txt")
                    expect = all_rows[np.isin(all_rows[:, 1], want)]
                    np.testing.assert_array_equal(rows, expect)
                    seen |= set(rows[:, 1].astype(int).tolist())
                assert seen == set(want)
    assert n_specific and n_general


def test_masks_lie_in_boxes_and_pass_threshold(data):
    lay = DatasetLayout(data, "In-domain", "test")
    scene = _scenes(lay)[0]
    for f in (lay.meta_dir(scene) / "masks").glob("View*.parquet"):
        t = pq.read_table(f).to_pydict()
        for i in range(0, len(t["frame"]), 7):
            m = MaskRLE.from_string(t["rle"][i])
            assert (m.height, m.width) == (TINY.height, TINY.width)
            b = m.to_box()
            assert b is not None and m.area >= TINY.min_visible_pixels
            assert b.left >= t["left"][i] and b.top >= t["top"][i]
            assert b.left + b.width <= t["left"][i] + t["width"][i]
            assert b.top + b.height <= t["top"][i] + t["height"][i]
            assert t["visible_fraction"][i] >= TINY.min_visible_fraction - 1e-6


def test_occlusion_and_absence_happen(data):
    hidden = partial = occluded = boxes = 0
    absent_some_view = False
    for lay in _layouts(data):
        for scene in _scenes(lay):
            meta = lay.meta_dir(scene)
            s = json.loads((meta / "done.json").read_text())["summary"]
            hidden += s["person_hidden"]
            partial += s["person_partial"]
            for f in (meta / "masks").glob("View*.parquet"):
                t = pq.read_table(f).to_pydict()
                vf, inf = np.array(t["visible_fraction"]), np.array(t["in_image_fraction"])
                occluded += int(np.sum((vf < 0.8) & (inf > 0.999)))
                boxes += len(vf)
            objs = json.loads((meta / "objects.json").read_text())["objects"]
            # a person seen in some frames of a view but not in others (left the view, or
            # hidden), or seen by one view and never by another
            absent_some_view |= any(
                min(o["frames_in_gt"].values()) < max(o["frames_in_gt"].values())
                or 0 < max(o["frames_in_gt"].values()) < 16
                for o in objs if o["category"] == "person")
    assert hidden > 0, "no object is ever hidden below the visibility threshold"
    assert partial > 0 and occluded > 0, "no partial occlusion by other objects"
    assert absent_some_view
    assert occluded < boxes


# ----------------------------------------------------------------------------- determinism


def test_deterministic_for_a_seed(tmp_path):
    cfg = SynthConfig(scenes=1, frames=6, width=160, height=96, people=5,
                      domains=("Cross-domain",), splits=("test",))
    generate(cfg, tmp_path / "a", map_fn=lambda fn, items: [fn(x) for x in items])
    generate(cfg, tmp_path / "b", map_fn=lambda fn, items: [fn(x) for x in items])
    other = SynthConfig(**{**cfg.__dict__, "seed": 1})
    generate(other, tmp_path / "c", map_fn=lambda fn, items: [fn(x) for x in items])
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    assert _tree_hash(tmp_path / "a") != _tree_hash(tmp_path / "c")


def test_scene_tasks_are_picklable_and_independent(tmp_path):
    cfg = SynthConfig(scenes=2, frames=4, width=160, height=96, people=4, splits=("test",),
                      domains=("In-domain",))
    specs = plan_scenes(cfg)
    assert [s.name for s in specs] == ["PlazaTest01", "PlazaTest02"]
    specs = pickle.loads(pickle.dumps(specs))
    # rendering scene 2 alone equals scene 2 rendered after scene 1
    render_scene(specs[1], tmp_path / "alone")
    calls = []
    generate(cfg, tmp_path / "all", map_fn=lambda fn, items: calls.append(1) or
             [fn(x) for x in reversed(items)])
    assert calls == [1]
    a = tmp_path / "alone" / "In-domain" / "images" / "test" / "PlazaTest02_View2"
    b = tmp_path / "all" / "In-domain" / "images" / "test" / "PlazaTest02_View2"
    assert _tree_hash(a) == _tree_hash(b)


def test_refuses_other_config_or_foreign_folder(tmp_path):
    cfg = SynthConfig(scenes=1, frames=3, width=96, height=64, people=3, splits=("test",),
                      domains=("In-domain",))
    generate(cfg, tmp_path / "d", map_fn=lambda fn, items: [fn(x) for x in items])
    with pytest.raises(DatasetConfigError, match="frames"):
        generate(SynthConfig(**{**cfg.__dict__, "frames": 4}), tmp_path / "d")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetConfigError, match="not empty"):
        generate(cfg, tmp_path / "foreign")


# ----------------------------------------------------------------------------- CLI


def test_cli_synth_writes_then_skips(tmp_path, capsys):
    args = ["synth", "--out", str(tmp_path / "cli"), "--seed", "2", "--scenes", "1",
            "--views", "3", "--frames", "4", "--size", "160x96", "--people", "4",
            "--splits", "test", "--domains", "in"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rendered"] == 1 and out["skipped"] == 0
    lay = DatasetLayout(tmp_path / "cli", "In-domain", "test")
    assert list_image_views(lay.image_root) == {"PlazaTest01": ["View1", "View2", "View3"]}
    assert list_expressions(lay.gt_root)
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rendered"] == 0 and out["skipped"] == 1
    assert main([*args[:-4], "--splits", "train", "--domains", "in"]) == 2
    assert "another config" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["640", "640x", "axb", "10x10"])
def test_cli_bad_size_is_a_usage_error(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as e:
        main(["synth", "--out", str(tmp_path / "x"), "--size", bad])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "WIDTHxHEIGHT" in err or ">= 32" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()
