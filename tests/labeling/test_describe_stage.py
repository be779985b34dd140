"""Which crops describe a trajectory (``sample_crops``): every view its share, whatever the
number of tracklets a view's track is split into."""

import numpy as np

from raysys.labeling.describe_stage import sample_crops
from raysys.types import Tracklet


def _t(view, lid, frames, score=0.9, h=20.0):
    frames = np.asarray(frames)  # box heights vary as a walking person's do
    boxes = np.array([[f, 5, 10, h + 4 * np.sin(f)] for f in frames], float)
    return Tracklet("S", view, lid, "person", frames, boxes, np.full(len(frames), score))


def _frames(tracklets, samples):
    return sorted((v, int(tracklets[ti].frames[k])) for v, ti, k in samples)


def test_a_track_split_into_tracklets_is_sampled_like_the_whole_track():
    # one person, View1 tracked in one piece at one stage and in three at another (a
    # later stage joined the fragments): the same crops describe them, so a description
    # changes only when what the trajectory shows changes
    whole = [_t("View1", 1, range(0, 60)), _t("View2", 2, range(0, 60))]
    split = [_t("View1", 1, range(0, 20)), _t("View1", 3, range(20, 45)),
             _t("View1", 4, range(45, 60)), _t("View2", 2, range(0, 60))]
    a, b = sample_crops(whole, 12), sample_crops(split, 12)
    assert len(a) == len(b) == 12
    assert _frames(whole, a) == _frames(split, b)
    per_view = {v: sum(1 for x, _, _ in a if x == v) for v in ("View1", "View2")}
    assert per_view == {"View1": 6, "View2": 6}  # an equal share per view
    f1 = [f for v, f in _frames(whole, a) if v == "View1"]
    assert f1[-1] - f1[0] >= 30  # spread over time, not one burst


def test_confident_large_boxes_are_preferred_and_short_tracks_give_what_they_have():
    weak = _t("View1", 1, range(0, 30), score=0.2, h=10.0)
    strong = _t("View1", 2, range(30, 60), score=0.9, h=30.0)
    short = _t("View2", 3, [5, 6])
    s = sample_crops([weak, strong, short], 10)
    view1 = [(ti, k) for v, ti, k in s if v == "View1"]
    assert view1 and all(ti == 1 for ti, _ in view1)  # the best third are all 'strong'
    assert sorted(int(short.frames[k]) for v, _, k in s if v == "View2") == [5, 6]
    assert sample_crops([], 10) == [] and sample_crops([short], 0) == []
