"""Tracker state export/restore (raysys.tracking.state): a tracker restored from the state
of another, on a fresh object, continues the stream exactly as the uninterrupted one.

Real ViewSAM (embedded tiny SAM2 at 64 px, MiniLM), random weights with SAM2 forced to call
every decoded object present, so that tracks open, live, carry memory and get ids.
"""

import io
import json

import numpy as np
import pytest
import torch

from raysys.tracking import MultiExpressionTracker, TrackConfig, ViewSAMTracker
from raysys.tracking.state import export_state, restore_state, state_nbytes

OPEN = dict(refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0)
EXPRESSIONS = ["a person in a red coat", "a man wearing black trousers"]


@pytest.fixture(scope="module")
def model(tiny_viewsam):
    return tiny_viewsam


def _stream(n, v=2, h=48, w=80, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(v)]
            for _ in range(n)]


def _objects(steps):
    """(expression, frame, view, track id, global id, box, score) of every output object."""
    return [(e, r.index, k, o.track_id, o.global_id, o.box, o.score)
            for s in steps for e, res in enumerate(s) for r in res
            for k, objs in enumerate(r.views) for o in objs]


def _roundtrip(arrays, meta):
    """Through the wire formats a store uses: npz without pickle, JSON text."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(json.dumps(meta))


@pytest.mark.parametrize("cut", [6, 7], ids=["clip-boundary", "mid-clip"])
def test_restored_tracker_continues_exactly(model, cut):
    frames = _stream(15)  # clips of 3: cut after 2 clips, or 1 frame set into the third
    cfg = TrackConfig(clip_frames=3, keep_masks=False, memory_frames=2, **OPEN)
    whole = MultiExpressionTracker(model, EXPRESSIONS, 2, cfg, view_ids=[1, 0])
    want = [whole.step(f) for f in frames] + [whole.flush()]

    first = MultiExpressionTracker(model, EXPRESSIONS, 2, cfg, view_ids=[1, 0])
    got = [first.step(f) for f in frames[:cut]]
    arrays, meta = _roundtrip(*export_state(first))
    assert state_nbytes(arrays) > 0 and meta["next_frame"] == 6
    assert any(t for q in meta["queries"] for t in q["tracks"]), "tracks should be live"
    del first
    again = restore_state(model, arrays, meta)
    assert again.state_bytes() > 0
    got += [again.step(f) for f in frames[cut:]] + [again.flush()]
    a, b = _objects(got), _objects(want)
    assert a, "present-forced SAM2 should open tracks"
    assert a == b  # ids, boxes and scores bit for bit


def test_restored_state_is_a_copy_and_single_expression_kind(model):
    frames = _stream(4, seed=1)
    cfg = TrackConfig(clip_frames=2, keep_masks=False, **OPEN)
    one = ViewSAMTracker(model, EXPRESSIONS[0], 2, cfg)
    for f in frames:
        one.step(f)
    arrays, meta = export_state(one)
    again = restore_state(model, arrays, meta)
    assert isinstance(again, ViewSAMTracker) and again.expression == EXPRESSIONS[0]
    assert again.identities.next_id == one.identities.next_id
    # the restored tracker does not share tensors with the exported one
    t0, t1 = one.tracks[0][0], again.tracks[0][0]
    assert torch.equal(t0.box, t1.box) and t0.box.data_ptr() != t1.box.data_ptr()
    with pytest.raises(ValueError, match="version"):
        restore_state(model, arrays, {**meta, "version": 99})
    with pytest.raises(ValueError, match="missing array"):
        restore_state(model, {}, meta)
