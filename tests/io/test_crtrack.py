"""CRTrack layout I/O: round trips, odd names, malformed files, atomic writes."""

from pathlib import Path

import numpy as np
import pytest

from raysys.io import crtrack as io
from raysys.io.dataset import DatasetLayout

ODD_NAMES = [
    "Circle_A man wearing a black coat, gray trousers and gray shoes",
    "ParkingLot_A man in a green  coat, riding a bicycle",  # double space
    "Gate2_A woman in a red coat_and_stripes",  # '_' inside the text
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_expression_names_round_trip(tmp_path, name):
    scene, text = io.split_expression_name(name)
    assert io.expression_folder_name(scene, text) == name
    gt = {"View1": np.array([[1, 5, 10, 20, 30, 40]]), "View2": np.zeros((0, 6))}
    io.write_expression_gt(tmp_path, name, gt)
    [expr] = io.list_expressions(tmp_path)
    assert (expr.name, expr.scene, expr.text) == (name, scene, text)
    back = io.read_expression_gt(tmp_path, name)
    assert list(back) == ["View1", "View2"]
    np.testing.assert_array_equal(back["View1"], gt["View1"])
    assert back["View2"].shape == (0, 6)
    assert (tmp_path / name / "gt" / "View2.txt").stat().st_size == 0  # 0-byte files are legal


def test_pred_round_trip_two_decimals(tmp_path):
    rows = np.array([[2, 1, 1.234, 2.0, 30.555, 40.0], [1, 9, 0, 0, 5, 5]])
    io.write_expression_pred(tmp_path, "S_x", {"View1": rows})
    text = (tmp_path / "S_x" / "View1.txt").read_text()
    # sorted by frame; 2 decimals; trailing 1,-1,-1,-1
    assert text.splitlines()[0] == "1,9,0.00,0.00,5.00,5.00,1,-1,-1,-1"
    assert text.splitlines()[1].startswith("2,1,1.23,2.00,30.")
    back, missing = io.read_expression_pred(tmp_path, "S_x", ["View1", "View2"],
                                            missing_as_empty=True)
    assert missing == [str(tmp_path / "S_x" / "View2.txt")]
    np.testing.assert_allclose(back["View1"][1], [2, 1, 1.23, 2.0, round(30.555, 2), 40.0])


@pytest.mark.parametrize(
    "content, line, match",
    [
        ("1,2,3,4,5,6,1,1\n", 1, "expected 9"),
        ("1,2,3,4,5,6,1,1,1\n1.5,2,3,4,5,6,1,1,1\n", 2, "integers"),
        ("1,2,3,4,5,6,1,1,1\n1,x,3,4,5,6,1,1,1\n", 2, "integers"),
        ("1,2,3,4,5,6,1,1,1\n\n1,2,3,4,5,6,1,1,1\n", 3, "duplicate"),
        ("1,2,3,4,abc,6,1,1,1\n", 1, "numbers"),
        ("1,2,3,4,-5,6,1,1,1\n", 1, ">= 0"),
    ],
)
def test_malformed_gt_names_file_and_line(tmp_path, content, line, match):
    f = tmp_path / "View1.txt"
    f.write_text(content)
    with pytest.raises(io.CRTrackFormatError, match=match) as e:
        io.read_gt_file(f)
    assert e.value.line == line and e.value.path == str(f)
    assert f"{f}:{line}" in str(e.value)


def test_unreadable_and_missing(tmp_path):
    f = tmp_path / "View1.txt"
    f.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(io.CRTrackFormatError, match="cannot read"):
        io.read_pred_file(f)
    with pytest.raises(io.CRTrackFormatError, match="not found"):
        io.read_pred_file(tmp_path / "nope.txt")
    (tmp_path / "S_e" / "gt").mkdir(parents=True)
    (tmp_path / "S_e" / "gt" / "View1.txt").write_text("")
    with pytest.raises(io.CRTrackFormatError, match="--missing-as-empty"):
        io.read_expression_pred(tmp_path / "preds", "S_e", ["View1"])


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    f = tmp_path / "View1.txt"
    io.write_gt_file(f, np.array([[1, 1, 0, 0, 1, 1]]))
    before = f.read_text()
    with pytest.raises(ValueError, match="duplicate"):
        io.write_gt_file(f, np.array([[1, 1, 0, 0, 1, 1], [1, 1, 2, 2, 1, 1]]))
    assert f.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["View1.txt"]  # no temp file left


def test_list_frames_and_views(tmp_path):
    lay = DatasetLayout(tmp_path, "In-domain", "test")
    for v in ("View2", "View1", "View10"):
        d = lay.view_dir("Plaza1", v)
        d.mkdir(parents=True)
        for i in (10, 2, 1):
            (d / f"Plaza1_{v}_{i:06d}.jpg").write_bytes(b"x")  # listed, not decoded
    assert io.list_image_views(lay.image_root) == {"Plaza1": ["View1", "View2", "View10"]}
    assert [f for f, _ in io.list_frames(lay.view_dir("Plaza1", "View1"))] == [1, 2, 10]
    assert lay.gt_root == tmp_path / "In-domain" / "gt" / "sorted_gt_test_In-domain"
    with pytest.raises(ValueError, match="domain"):
        DatasetLayout(tmp_path, "in", "test")


def test_reads_real_crtrack_gt():
    root = Path(__file__).resolve().parents[2].parent / "shared" / "crtrack"
    gt_root = root / "Cross-domain" / "gt" / "sorted_gt_test_Cross-domain"
    if not gt_root.is_dir():
        pytest.skip(f"CRTrack data not found at {root}")
    exprs = io.list_expressions(gt_root)
    assert len(exprs) == 48  # README.txt: Garden1 16 + Garden2 17 + ParkingLot 15
    assert {e.scene for e in exprs} == {"Garden1", "Garden2", "ParkingLot"}
    assert any("  " in e.text for e in exprs)
    rows = sum(len(r) for e in exprs for r in io.read_expression_gt(gt_root, e.name).values())
    assert rows > 1000
