"""Data types: validation at construction and the RLE round trip."""

import numpy as np
import pytest

from raysys.types import Box, CrossViewTrajectory, Expression, MaskRLE, Tracklet


def test_box_iou_hand_worked():
    # a = [0,0]-[10,10] (area 100); b = [5,0]-[15,10] (area 100); overlap 5x10 = 50
    # IoU = 50 / (100 + 100 - 50) = 1/3
    a, b = Box(0, 0, 10, 10), Box(5, 0, 10, 10)
    assert a.iou(b) == pytest.approx(1 / 3)
    assert Box.from_xyxy(1, 2, 4, 6).xywh == (1, 2, 3, 4)


@pytest.mark.parametrize("args", [(0, 0, -1, 5), (0, 0, 5, -1), (float("nan"), 0, 1, 1)])
def test_box_rejects_bad_values(args):
    with pytest.raises(ValueError):
        Box(*args)


def test_rle_hand_worked_column_major():
    # 2x3 mask, column-major order reads columns top to bottom:
    # [[0, 1, 1],      column 0: 0 0 | column 1: 1 1 | column 2: 1 0
    #  [0, 1, 0]]  ->  flat 0 0 1 1 1 0 -> runs: 2 zeros, 3 ones, 1 zero
    m = np.array([[0, 1, 1], [0, 1, 0]], dtype=bool)
    rle = MaskRLE.encode(m)
    assert rle.counts == (2, 3, 1)
    assert rle.area == 3
    assert rle.to_box() == Box(1, 0, 2, 2)
    np.testing.assert_array_equal(rle.decode(), m)


def test_rle_starting_with_one_and_string_round_trip():
    m = np.array([[1, 0], [1, 1]], dtype=bool)  # flat (F): 1 1 0 1 -> runs 0,2,1,1
    rle = MaskRLE.encode(m)
    assert rle.counts == (0, 2, 1, 1)
    assert MaskRLE.from_string(rle.to_string()) == rle
    np.testing.assert_array_equal(rle.decode(), m)


def test_rle_random_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) > 0.6
        np.testing.assert_array_equal(MaskRLE.encode(m).decode(), m)
    assert MaskRLE.encode(np.zeros((3, 4), bool)).to_box() is None


def test_rle_rejects_wrong_total():
    with pytest.raises(ValueError, match="sum to"):
        MaskRLE(2, 2, (1, 2))
    with pytest.raises(ValueError, match="MaskRLE string"):
        MaskRLE.from_string("garbage")


def _tracklet(view="View1", frames=(1, 2, 3), scene="Plaza1"):
    n = len(frames)
    return Tracklet(scene, view, 1, "person", np.array(frames), np.ones((n, 4)), np.ones(n))


def test_tracklet_validation():
    t = _tracklet()
    assert len(t) == 3 and t.boxes.dtype == np.float64
    with pytest.raises(ValueError, match="strictly increasing"):
        _tracklet(frames=(1, 3, 2))
    with pytest.raises(ValueError, match="shape"):
        Tracklet("Plaza1", "View1", 1, "person", np.arange(3), np.ones((2, 4)), np.ones(3))
    with pytest.raises(ValueError, match="must not contain '_'"):
        _tracklet(scene="Bad_Scene")


def test_trajectory_rejects_overlap_and_misfiled():
    a, b = _tracklet(frames=(1, 2)), _tracklet(frames=(2, 3))
    with pytest.raises(ValueError, match="overlapping"):
        CrossViewTrajectory("Plaza1", 7, "person", {"View1": (a, b)})
    with pytest.raises(ValueError, match="filed under"):
        CrossViewTrajectory("Plaza1", 7, "person", {"View2": (a,)})
    traj = CrossViewTrajectory("Plaza1", 7, "person",
                               {"View1": (a,), "View2": (_tracklet("View2"),)})
    assert traj.views == ["View1", "View2"]


def test_expression_folder_name_and_validation():
    e = Expression("Plaza1", "A man in a green  coat, riding a bicycle", (3, 1))
    assert e.global_ids == (1, 3)
    assert e.folder_name == "Plaza1_A man in a green  coat, riding a bicycle"
    with pytest.raises(ValueError):
        Expression("Plaza_1", "x", (1,))
    with pytest.raises(ValueError):
        Expression("Plaza1", "a/b", (1,))
