"""Ground-plane consistency of cross-view association (``raysys.labeling.ground_plane``)."""

import numpy as np

from raysys.labeling.ground_plane import (
    GroundPlaneConfig,
    ground_distances,
    ground_homographies,
    ground_veto,
)
from raysys.types import Tracklet

# view 2 sees the ground of view 1 through this homography (a rotation, a perspective tilt)
H12 = np.array([[0.8, -0.2, 120.0], [0.1, 0.6, 60.0], [0.0002, 0.0009, 1.0]])


def _to_view2(pts):
    p = np.column_stack([pts, np.ones(len(pts))]) @ H12.T
    return p[:, :2] / p[:, 2:3]


def _tracklet(view, local_id, frames, feet, height=40.0):
    boxes = np.column_stack([feet[:, 0] - height / 6, feet[:, 1] - height, np.full(len(feet),
                             height / 3), np.full(len(feet), height)])
    return Tracklet("S", view, local_id, "person", frames, boxes, np.ones(len(frames)))


def _scene(n_people=6, n_frames=40, seed=0):
    """Six people walking straight lines on view 1's ground, seen by both views."""
    rng = np.random.default_rng(seed)
    frames = np.arange(1, n_frames + 1)
    out = []
    for k in range(n_people):
        start = rng.uniform([60, 120], [560, 330])
        step = rng.uniform(-3, 3, 2)
        feet1 = start + frames[:, None] * step
        feet2 = _to_view2(feet1) + rng.normal(0, 0.5, (n_frames, 2))
        out += [_tracklet("View1", k + 1, frames, feet1), _tracklet("View2", k + 1, frames, feet2)]
    return out


def test_homography_and_ground_distances_from_the_identities():
    tl = _scene()
    gids = np.repeat(np.arange(1, 7), 2)  # tracklets 2k, 2k+1 are one person
    homs = ground_homographies(tl, gids)
    assert ("View1", "View2") in homs and ("View2", "View1") in homs
    d = ground_distances(tl, homs, GroundPlaneConfig())
    same = [d[2 * k, 2 * k + 1] for k in range(6)]
    other = [d[2 * k, 2 * j + 1] for k in range(6) for j in range(6) if j != k]
    assert max(same) < 0.1, same
    assert np.median(other) > 1.0 and np.isnan(d[0, 2])  # same view: no distance


def test_an_appearance_match_the_ground_contradicts_is_dropped():
    tl = _scene()
    gids = np.repeat(np.arange(1, 7), 2)
    # appearance: every person matched across views, except that person 1's best view-2
    # candidate is person 2 (similar clothes)
    matches = [[(i + 1, 0.9)] if i % 2 == 0 else [(i - 1, 0.9)] for i in range(12)]
    matches[0] = [(3, 0.95)]
    kept, stats = ground_veto(tl, gids, matches, GroundPlaneConfig(attach_dist=-1))
    assert stats == {"homographies": 2, "vetoed": 1, "attached": 0}
    assert kept[0] == [] and kept[1:] == matches[1:]
    # switched off: nothing changes
    same, stats = ground_veto(tl, gids, matches, GroundPlaneConfig(enabled=False))
    assert same == matches and stats["homographies"] == 0


def test_a_tracklet_appearance_left_alone_joins_its_person_on_the_ground():
    tl = _scene()
    gids = np.repeat(np.arange(1, 7), 2)
    gids[0] = 7  # person 1's view-1 tracklet: no appearance match (a different light)
    matches = [[(i + 1, 0.9)] if i % 2 == 0 else [(i - 1, 0.9)] for i in range(12)]
    matches[0], matches[1] = [], []
    kept, stats = ground_veto(tl, gids, matches)
    # both halves of person 1 are alone in their views: each is matched to the other
    assert stats["attached"] == 2 and kept[0] == [(1, 0.0)] and kept[1] == [(0, 0.0)]
    assert kept[2:] == matches[2:]


def test_too_few_identities_give_no_homography():
    tl = _scene(n_people=3)
    gids = np.repeat(np.arange(1, 4), 2)
    assert ground_homographies(tl, gids) == {}
    matches = [[(i + 1, 0.9)] if i % 2 == 0 else [(i - 1, 0.9)] for i in range(6)]
    assert ground_veto(tl, gids, matches)[0] == matches


def test_label_config_reads_ground_plane_settings_and_names_bad_ones():
    import json

    import pytest

    from raysys.config import from_dict, to_dict
    from raysys.labeling.config import LabelConfig

    cfg = from_dict(LabelConfig, {"ground_plane": {"enabled": False, "veto_dist": 0.7}})
    assert cfg.ground_plane == GroundPlaneConfig(enabled=False, veto_dist=0.7)
    # a config written to JSON reads back equal (tuples become lists on the way)
    back = from_dict(LabelConfig, json.loads(json.dumps(to_dict(LabelConfig()))))
    assert back == LabelConfig()
    with pytest.raises(ValueError, match=r"ground_plane: unknown GroundPlaneConfig fields "
                                         r"\['veto'\]; valid"):
        from_dict(LabelConfig, {"ground_plane": {"veto": 0.7}})
