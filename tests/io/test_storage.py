"""Storage as a URI (raysys.io.storage): RemotePath's pathlib subset, atomic writes, Parquet
and CRTrack files in S3, the node-local input cache, Ray's storage arguments, and the GT
guard on remote reads. The S3 tests run against the session's local S3 server (moto, a
real process; tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from raysys.io import crtrack, storage
from raysys.io.storage import RemotePath


def test_local_paths_stay_pathlib_and_uris_become_remote_paths(tmp_path):
    assert storage.path(str(tmp_path)) == tmp_path and isinstance(storage.path(tmp_path), Path)
    assert storage.path(f"file://{tmp_path}") == tmp_path
    p = storage.path("s3://bkt/runs/a/model.safetensors")
    assert isinstance(p, RemotePath) and storage.is_uri(p) and storage.is_uri(str(p))
    assert (p.name, p.stem, p.suffix) == ("model.safetensors", "model", ".safetensors")
    assert str(p.parent) == "s3://bkt/runs/a" and p.parent.key == "bkt/runs/a"
    assert str(p.parent / "x" / "y.txt") == "s3://bkt/runs/a/x/y.txt"
    assert p.parent.parent / "a" / "model.safetensors" == p
    assert str(p.with_suffix(".json")) == "s3://bkt/runs/a/model.json"
    assert str(p.relative_to(storage.path("s3://bkt/runs"))) == "a/model.safetensors"
    with pytest.raises(ValueError, match="'..'"):
        storage.path("s3://bkt/a/../b")
    with pytest.raises(ValueError, match="'..'"):
        p / "../x"
    with pytest.raises(ValueError, match="not a storage URI"):
        RemotePath("s3:///no-bucket")


def test_ray_storage_arguments(tmp_path):
    assert storage.ray_storage(tmp_path) == {"storage_path": str(tmp_path)}


@pytest.fixture(scope="module")
def bucket(s3_server):
    return storage.path(s3_server.bucket("storage-tests"))


def test_files_and_folders_in_s3(bucket):
    import pyarrow as pa

    from raysys.io.tables import read_table, write_table

    root = bucket / "t1"
    assert not root.exists() and not root.is_dir() and list(root.iterdir()) == []
    crtrack.atomic_write_text(root / "a" / "x.json", '{"k": 1}')
    storage.write_bytes(root / "a" / "y.bin", b"\x00\x01")
    (root / "b.txt").write_text("hi")
    assert root.is_dir() and (root / "a").is_dir() and (root / "b.txt").is_file()
    assert (root / "a" / "x.json").read_text() == '{"k": 1}'
    assert [p.name for p in root.iterdir()] == ["a", "b.txt"]
    assert [p.name for p in root.glob("*/*.json")] == ["x.json"]
    assert [str(p) for p in root.glob("*.txt")] == [f"{root}/b.txt"]
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    write_table(table, root / "t.parquet")
    assert read_table(root / "t.parquet").equals(table)
    (root / "b.txt").unlink()
    (root / "b.txt").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="no such file in storage"):
        (root / "b.txt").read_bytes()
    storage.rmtree(root / "a")
    assert not (root / "a").exists() and (root / "t.parquet").is_file()


def test_crtrack_predictions_round_trip_through_s3(bucket, tmp_path):
    rows = {"View1": np.array([[1, 3, 10, 20, 30, 40], [2, 3, 11, 21, 31, 41]], float),
            "View2": np.zeros((0, 6))}
    crtrack.write_expression_pred(bucket / "pred", "S_a man", rows)
    crtrack.write_expression_pred(tmp_path, "S_a man", rows)
    got, missing = crtrack.read_expression_pred(bucket / "pred", "S_a man", ["View1", "View2"])
    assert not missing and np.array_equal(got["View1"], rows["View1"])
    assert (bucket / "pred" / "S_a man" / "View1.txt").read_bytes() == (
        tmp_path / "S_a man" / "View1.txt").read_bytes()


def test_local_copy_is_cached_and_follows_the_remote(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    src = bucket / "frames" / "S_View1"
    for i in (1, 2):
        (src / f"{i:06d}.jpg").write_bytes(b"jpeg%d" % i)
    local = storage.local_copy(src)
    assert local.name == "S_View1" and str(local).startswith(str(tmp_path / "cache"))
    assert sorted(p.name for p in local.iterdir() if not p.name.startswith(".")) == [
        "000001.jpg", "000002.jpg"]
    first = (local / "000001.jpg").stat().st_mtime_ns
    assert storage.local_copy(src) == local  # unchanged remote: nothing downloaded again
    assert (local / "000001.jpg").stat().st_mtime_ns == first
    (src / "000002.jpg").write_bytes(b"a longer frame")  # changed, one added, one removed
    (src / "000003.jpg").write_bytes(b"jpeg3")
    (src / "000001.jpg").unlink()
    storage.local_copy(src)
    assert (local / "000002.jpg").read_bytes() == b"a longer frame"
    assert (local / "000003.jpg").is_file() and not (local / "000001.jpg").exists()
    one = storage.local_copy(src / "000003.jpg")  # a single file
    assert one.name == "000003.jpg" and one.read_bytes() == b"jpeg3"
    with pytest.raises(FileNotFoundError, match="not found in storage"):
        storage.local_copy(bucket / "nothing-here")
    assert storage.local_copy(tmp_path) == tmp_path  # a local path is its own copy


def test_a_dataset_in_s3_lists_and_reads_its_frames(bucket, tiny_test_split, tmp_path,
                                                    monkeypatch):
    from raysys.io.dataset import DatasetLayout, require_out_outside_ground_truth
    from raysys.io.frames import list_frames, list_image_views

    monkeypatch.setenv("RAYSYS_CACHE", str(tmp_path / "cache"))
    lay = tiny_test_split
    storage.upload(lay.image_root, bucket / "data" / "In-domain" / "images" / "test")
    remote = DatasetLayout(str(bucket / "data"), "In-domain", "test")
    assert list_image_views(remote.image_root) == list_image_views(lay.image_root)
    scene, views = next(iter(list_image_views(lay.image_root).items()))
    got = list_frames(remote.view_dir(scene, views[0]))
    want = list_frames(lay.view_dir(scene, views[0]))
    assert [f for f, _ in got] == [f for f, _ in want]
    assert all(a.read_bytes() == b.read_bytes() for (_, a), (_, b) in zip(got, want,
                                                                         strict=True))
    with pytest.raises(ValueError, match="inside the dataset's ground truth"):
        require_out_outside_ground_truth(f"{bucket}/data/In-domain/gt/x", remote)


def test_the_gt_guard_refuses_remote_ground_truth(bucket):
    (bucket / "g" / "In-domain" / "gt" / "x.txt").write_text("secret")
    (bucket / "g" / "In-domain" / "images" / "y.txt").write_text("frames")
    code = f"""
import sys
from raysys import guard
from raysys.io import storage
guard.install(["{bucket}/g/In-domain/gt/"])
assert storage.path("{bucket}/g/In-domain/images/y.txt").read_text() == "frames"
try:
    storage.path("{bucket}/g/In-domain/gt/x.txt").read_bytes()
except guard.GroundTruthAccessError as e:
    print("refused:", e)
    sys.exit(0)
sys.exit(3)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=os.environ)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "refused:" in r.stdout and "is ground truth" in r.stdout
    env = {"env_vars": {"RAYSYS_FORBID_READ": f"{bucket}/g/In-domain/gt\n/tmp/x"}}
    from raysys import guard

    assert guard.runtime_env([f"{bucket}/g/In-domain/gt/", "/tmp/x"])["env_vars"] == \
        env["env_vars"]
