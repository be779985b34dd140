"""Cross-view association: hand-worked affinity cases."""

import numpy as np
import pytest

from raysys.labeling.association import AssociationConfig, affinity_matches, associate


def _unit(*rows):
    e = np.array(rows, dtype=float)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_best_candidate_per_other_view_above_threshold():
    # tracklets: 0,1 in View1; 2,3 in View2
    # e0=(1,0) e1=(0,1) e2=(0.8,0.6) e3=(0.6,0.8)
    # cos(0,2)=0.8 cos(0,3)=0.6 -> anchor 0 keeps 2; cos(1,2)=0.6 cos(1,3)=0.8 -> 1 keeps 3
    views = np.array(["View1", "View1", "View2", "View2"])
    emb = _unit([1, 0], [0, 1], [0.8, 0.6], [0.6, 0.8])
    m = affinity_matches(views, emb, threshold=0.7)
    assert [[j for j, _ in row] for row in m] == [[2], [3], [0], [1]]
    assert m[0][0][1] == pytest.approx(0.8)
    # threshold above every affinity: nothing is kept
    assert affinity_matches(views, emb, threshold=0.9) == [[], [], [], []]


def test_duplicates_allowed_then_resolved_without_same_view_conflict():
    # View1 has two co-existing people 0 and 1 that both look most like 2 in View2.
    # cos(0,2)=0.98 > cos(1,2)=0.9: both anchors keep 2 (duplicate), but 0 and 1 share
    # frames, so only the stronger pair (0,2) merges; 1 stays alone.
    views = np.array(["View1", "View1", "View2"])
    emb = _unit([1, 0.2], [1, 0.5], [1, 0.0])
    spans = [np.arange(1, 11), np.arange(5, 15), np.arange(1, 15)]
    gids, m = associate(views, emb, spans, AssociationConfig(threshold=0.85))
    assert [j for j, _ in m[0]] == [2] and [j for j, _ in m[1]] == [2]  # duplicates
    assert gids[0] == gids[2] and gids[1] != gids[0]


def test_disjoint_fragments_of_one_view_join_through_another_view():
    # 0 (frames 1-10) and 1 (frames 20-30) are fragments of one person in View1; 2 in
    # View2 sees the whole walk. Both fragments match 2, and they do not co-exist, so all
    # three get one id - unless merge_same_view is off.
    views = np.array(["View1", "View1", "View2"])
    emb = _unit([1, 0.1], [1, 0.15], [1, 0.12])
    spans = [np.arange(1, 11), np.arange(20, 31), np.arange(1, 31)]
    gids, _ = associate(views, emb, spans, AssociationConfig(threshold=0.9))
    assert len(set(gids.tolist())) == 1
    gids, _ = associate(views, emb, spans,
                        AssociationConfig(threshold=0.9, merge_same_view=False))
    assert len(set(gids.tolist())) == 2


def test_ids_are_numbered_from_one_in_order():
    views = np.array(["View1", "View2", "View3"])
    emb = _unit([1, 0], [0, 1], [-1, 0])
    gids, _ = associate(views, emb, [np.arange(3)] * 3, AssociationConfig(threshold=0.5))
    assert gids.tolist() == [1, 2, 3]
