"""Fingerprints of inputs and the records of output folders (issue #19): what changed is
found cheaply and named; a record guarding no finished work never blocks; an output is
never written into a dataset's GT; a missing view folder is found from what the dataset
says it has."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from raysys.io.dataset import (
    DatasetLayout,
    expected_views,
    require_out_outside_ground_truth,
    require_views,
)
from raysys.io.fingerprint import (
    check_record,
    dataset_fingerprint,
    differences,
    files_digest,
    scene_changes,
    write_record,
)


@pytest.fixture
def data(tiny_test_split, tmp_path):
    """A copy of the tiny test split this test may change (mtimes kept, like `cp -a`)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_test_split.root, root)
    return DatasetLayout(root, "In-domain", "test")


def test_differences_name_each_changed_leaf():
    have = {"cfg": {"reid": "stripes", "k": 1}, "data": "/a"}
    want = {"cfg": {"reid": "osnet", "k": 1}, "data": "/a", "new": 2}
    assert differences(have, want) == ['cfg.reid: was "stripes", now "osnet"',
                                       "new: not recorded, now 2"]
    assert differences(have, have) == []


def test_scene_changes():
    assert scene_changes({"A": "1", "B": "2"}, {"A": "1", "B": "3", "C": "4"}) == ["B", "C"]
    assert scene_changes({"A": "1", "B": "2"}, {"A": "1"}) == ["B"]  # gone
    assert scene_changes(None, {"A": "1"}) == ["A"]  # nothing recorded: all of them


def test_dataset_fingerprint_follows_the_frames_not_the_path(data, tiny_test_split):
    fp = dataset_fingerprint(data)
    assert fp == dataset_fingerprint(tiny_test_split)  # a copy with its mtimes: the same
    (scene,) = fp
    frame = sorted(data.view_dir(scene, "View2").iterdir())[3]
    st = frame.stat()
    frame.write_bytes(frame.read_bytes())  # rewritten in place: same bytes, new mtime
    assert dataset_fingerprint(data)[scene] != fp[scene]
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert dataset_fingerprint(data) == fp
    # the GT is in the fingerprint of a fully supervised run only
    gt_file = next(data.gt_root.rglob("View1.txt"))
    full = dataset_fingerprint(data, ground_truth=True)
    gt_file.write_text(gt_file.read_text() + "\n")
    assert dataset_fingerprint(data) == fp
    assert dataset_fingerprint(data, ground_truth=True) != full


def test_files_digest_is_content_and_names(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "model.pt").write_bytes(b"weights")
    a = files_digest([tmp_path / "a" / "model.pt"], tmp_path / "a")
    assert a == files_digest([tmp_path / "b" / "model.pt"], tmp_path / "b")
    (tmp_path / "b" / "model.pt").write_bytes(b"weighty")
    assert a != files_digest([tmp_path / "b" / "model.pt"], tmp_path / "b")


def test_a_record_blocks_only_while_it_guards_finished_work(tmp_path):
    f = tmp_path / "out" / "record.json"
    mine = {"config": {"lr": 0.1}, "inputs": {"x": "1"}}
    assert check_record(f, mine, ["config"], has_work=True, what="runs") is None  # none yet
    write_record(f, mine)
    assert check_record(f, mine, ["config"], has_work=True, what="runs") == mine
    other = {"config": {"lr": 0.2}, "inputs": {"x": "1"}}
    with pytest.raises(ValueError, match=r"holds runs made with other settings \(config.lr: "
                       r"was 0.1, now 0.2; .*delete .*out or pass a new --out"):
        check_record(f, other, ["config"], has_work=True, what="runs")
    # what a run that failed before its first result left: it does not block the next run
    assert check_record(f, other, ["config"], has_work=False, what="runs") is None
    mtime = f.stat().st_mtime_ns
    write_record(f, mine)  # the same record: the file is left as it was
    assert f.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("sub, refused", [
    ("In-domain/gt/pred", True),
    ("In-domain/gt/sorted_gt_test_In-domain/x", True),
    ("In-domain/meta/test/pred", True),
    ("Cross-domain/meta/x", True),  # another domain's GT (even one not generated here)
    ("In-domain/images_pred", False),
    ("../pred", False),
])
def test_out_is_never_inside_a_datasets_ground_truth(data, sub, refused):
    out = data.root / sub
    if refused:
        with pytest.raises(ValueError, match="inside the dataset's ground truth"):
            require_out_outside_ground_truth(out, data)
        with pytest.raises(ValueError, match="--out .* inside"):  # without the layout too
            require_out_outside_ground_truth(out)
    else:
        require_out_outside_ground_truth(out, data)
    assert not out.exists()


def test_a_missing_view_is_an_error_unless_allowed(data):
    (scene,) = expected_views(data)
    assert expected_views(data)[scene] == ["View1", "View2", "View3"]
    assert require_views(data) == {}
    shutil.rmtree(data.view_dir(scene, "View3"))  # the last view: no gap shows it
    with pytest.raises(ValueError, match=f"scene {scene}: view View3 is missing .*"
                                         "--allow-missing-views"):
        require_views(data)
    assert require_views(data, allow_missing=True) == {scene: ["View3"]}
    # a CRTrack copy has no dataset.json: the GT folders' view files still name View3
    (data.root / "dataset.json").unlink()
    assert require_views(data, allow_missing=True) == {scene: ["View3"]}
    # without GT either: a category labels file may list the views
    shutil.rmtree(data.gt_root)
    assert require_views(data) == {}  # nothing says View3 exists
    cats = data.categories_file(scene)
    cats.write_text(json.dumps({**json.loads(cats.read_text()),
                                "views": ["View1", "View2", "View3"]}))
    assert require_views(data, allow_missing=True) == {scene: ["View3"]}


def test_a_gap_in_the_view_numbers_is_a_missing_view(data):
    (scene,) = expected_views(data)
    (data.root / "dataset.json").unlink()
    shutil.rmtree(data.gt_root)
    shutil.rmtree(data.view_dir(scene, "View2"))
    with pytest.raises(ValueError, match="view View2 is missing"):
        require_views(data)
