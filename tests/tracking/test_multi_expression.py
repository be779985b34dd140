"""The multi-expression tracker: one pass of the frozen trunk per frame set for all the
expressions of a scene, and results equal to one tracker per expression.

Real ViewSAM (embedded tiny SAM2 at 64 px, MiniLM), random weights with SAM2 forced to call
every decoded object present, so that tracks open, live and get ids.
"""

import dataclasses

import numpy as np
import pytest

from raysys.tracking import MultiExpressionTracker, TrackConfig, ViewSAMTracker

OPEN = dict(refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0)
EXPRESSIONS = ["a person in a red coat", "a man wearing black trousers and a gray cap",
               "a car"]


@pytest.fixture(scope="module")
def model(tiny_viewsam):
    return tiny_viewsam


def _stream(n, v=2, h=48, w=80, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(v)]
            for _ in range(n)]


def _run(tracker, frames):
    out = [tracker.step(f) for f in frames] + [tracker.flush()]
    return out


def _objects(results):
    """(frame, view, track id, global id, box) of every output object, in order."""
    return [(r.index, k, o.track_id, o.global_id, o.box)
            for r in results for k, objs in enumerate(r.views) for o in objs]


def _boxes(g, k):
    """External proposals (the same boxes for every expression; referring left to each
    expression's Candidate Generator scores)."""
    return np.array([[10.0 + 2 * g, 8.0, 22.0 + 2 * g, 30.0], [50.0, 10.0 + k, 60.0, 40.0]]), \
        None, None


@pytest.mark.parametrize("proposals,batch", [(None, None), (_boxes, None), (None, 3)],
                         ids=["cg", "external", "cg-batches-of-3"])
def test_results_equal_one_tracker_per_expression(model, proposals, batch):
    """Also when SAM2 runs the tracks in calls of at most ``batch_objects`` (a view-frame's
    tracks stay in one call: BAR's softmax over them, Eq. 8)."""
    frames = _stream(9)  # two full clips of 4 and a flushed one
    cfg = TrackConfig(clip_frames=4, keep_masks=False, **OPEN)
    multi = MultiExpressionTracker(model, EXPRESSIONS, 2,
                                   dataclasses.replace(cfg, batch_objects=batch),
                                   proposals=proposals)
    steps = _run(multi, frames)
    assert all(len(s) == len(EXPRESSIONS) for s in steps)
    for e, text in enumerate(EXPRESSIONS):
        got = _objects([r for s in steps for r in s[e]])
        one = ViewSAMTracker(model, text, 2, cfg, proposals=proposals)
        want = _objects([r for s in _run(one, frames) for r in s])
        assert got, "present-forced SAM2 should open tracks"
        assert [g[:4] for g in got] == [w[:4] for w in want], text
        np.testing.assert_allclose([g[4] for g in got], [w[4] for w in want], atol=0.05)
    # expressions never share tracks: each numbers its own from 1
    assert all(min(o[2] for o in _objects([r for s in steps for r in s[e]])) == 1
               for e in range(len(EXPRESSIONS)))


def test_trunk_runs_once_per_frame_set_for_all_expressions(model):
    """The patch embedding and the stages before the first VC-CMA adapter see each frame
    once, not once per expression."""
    rows = []
    trunk = model.sam2.image_encoder.trunk
    first = min(model.vc_cma.stages)
    hooks = [trunk.patch_embed.register_forward_hook(
                 lambda m, i, o: rows.append(("patch", o.shape[0]))),
             trunk.blocks[trunk.stage_ends[first] + 1].register_forward_hook(
                 lambda m, i, o: rows.append(("after", o.shape[0])))]
    try:
        tr = MultiExpressionTracker(model, EXPRESSIONS, 2, TrackConfig(clip_frames=3, **OPEN))
        for f in _stream(3):
            tr.step(f)
    finally:
        for h in hooks:
            h.remove()
    assert rows == [("patch", 2 * 3), ("after", len(EXPRESSIONS) * 2 * 3)]


def test_state_is_per_expression_and_bounded(model):
    cfg = TrackConfig(clip_frames=2, max_tracks=2, memory_frames=3, max_identities=4,
                      keep_masks=False, **OPEN)
    tr = MultiExpressionTracker(model, EXPRESSIONS[:2], 2, cfg)
    sizes = []
    for i, f in enumerate(_stream(20, seed=3)):
        tr.step(f)
        assert tr.num_live_tracks <= 2 * 2 * cfg.max_tracks
        if i % 2:
            sizes.append(tr.state_bytes())
    for q in tr.queries:
        assert len(q.identities) <= cfg.max_identities
    assert max(sizes[5:]) <= 1.05 * max(sizes[:5]), sizes


def test_rejects_no_expressions(model):
    with pytest.raises(ValueError, match="non-empty sentences"):
        MultiExpressionTracker(model, [], 2)
    with pytest.raises(ValueError, match="non-empty sentences"):
        MultiExpressionTracker(model, ["a person", "  "], 2)


def test_scene_passes_group_expressions_by_scene():
    from raysys.tracking.run import TrackUnit, plan_scene_passes

    units = [TrackUnit(f"{sc}_{i}", sc, f"e{i}", ("View1", "View2"))
             for sc in ("A", "B") for i in range(5)]
    passes = plan_scene_passes(units, 2)
    assert [(p.scene, [u.name for u in p.units]) for p in passes] == [
        ("A", ["A_0", "A_1"]), ("A", ["A_2", "A_3"]), ("A", ["A_4"]),
        ("B", ["B_0", "B_1"]), ("B", ["B_2", "B_3"]), ("B", ["B_4"])]
    assert [len(p.units) for p in plan_scene_passes(units, 16)] == [5, 5]
    with pytest.raises(ValueError, match="per pass"):
        plan_scene_passes(units, 0)
