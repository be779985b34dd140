"""The per-clip encoder batched across streams (raysys.tracking.encode, issue #23 item 4):
streams whose clips were encoded in one batched pass track exactly as streams that encode
their own clips.

Real ViewSAM (embedded tiny SAM2 at 64 px, MiniLM), random weights with SAM2 forced to call
every decoded object present, so that tracks open, live, carry memory and get ids.
"""

import numpy as np
import pytest
import torch

from raysys.tracking import MultiExpressionTracker, TrackConfig
from raysys.tracking.encode import clip_input, encode_clips

OPEN = dict(refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0)
CFG = TrackConfig(clip_frames=3, keep_masks=False, memory_frames=2, **OPEN)
# (expressions, views, frame size, view ids): lengths, sizes and views differ
STREAMS = [(["a person in a red coat"], 2, (48, 80), [1, 0]),
           (["a man"], 2, (64, 64), None),
           (["the woman with a bag on the left"], 2, (40, 72), None),
           (["a person in black"], 3, (48, 80), None),
           (["a person in a red coat", "a man wearing black trousers"], 2, (48, 80), None)]


@pytest.fixture(scope="module")
def model(tiny_viewsam):
    return tiny_viewsam


def _frames(n, v, hw, seed):
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 255, (*hw, 3), dtype=np.uint8) for _ in range(v)]
            for _ in range(n)]


def _trackers(model, streams):
    return [MultiExpressionTracker(model, ex, v, CFG, view_ids=ids) for ex, v, _, ids in streams]


def _objects(out):
    return [(e, r.index, k, o.track_id, o.global_id, np.asarray(o.box, float), o.score)
            for e, res in enumerate(out) for r in res for k, objs in enumerate(r.views)
            for o in objs]


def _run(model, streams, n, batched):
    """Step every stream through ``n`` frame sets, frame set by frame set; ``batched``:
    the clips that complete at once are encoded together (as a replica does)."""
    trackers = _trackers(model, streams)
    data = [_frames(n, v, hw, seed) for seed, (_, v, hw, _) in enumerate(streams)]
    out = [[] for _ in streams]
    for i in range(n):
        sets = [d[i] for d in data]
        enc = [None] * len(streams)
        if batched:
            inputs = [clip_input(tr, fs) for tr, fs in zip(trackers, sets, strict=True)]
            todo = [j for j, c in enumerate(inputs) if c is not None]
            for j, ce in zip(todo, encode_clips(model, [inputs[j] for j in todo]), strict=True):
                enc[j] = ce
        for j, tr in enumerate(trackers):
            out[j] += _objects(tr.step(sets[j], enc[j]))
    for j, tr in enumerate(trackers):  # a partial clip at the end, encoded alone
        out[j] += _objects(tr.flush())
    return out


def test_a_clip_encoded_alone_is_the_trackers_own_bit_for_bit(model):
    plain = _run(model, STREAMS[:1], 8, batched=False)
    alone = _run(model, STREAMS[:1], 8, batched=True)
    assert len(plain[0]) > 10
    assert [o[:5] for o in plain[0]] == [o[:5] for o in alone[0]]
    assert all(np.array_equal(a[5], b[5]) and a[6] == b[6]
               for a, b in zip(plain[0], alone[0], strict=True))


def test_batched_rows_equal_solo_encodings(model):
    trackers = _trackers(model, STREAMS[:3])
    sets = [_frames(3, v, hw, seed) for seed, (_, v, hw, _) in enumerate(STREAMS[:3])]
    for tr, fs in zip(trackers, sets, strict=True):
        for f in fs[:2]:
            tr.step(f)
    inputs = [clip_input(tr, fs[2]) for tr, fs in zip(trackers, sets, strict=True)]
    batched = encode_clips(model, inputs)
    for c, b in zip(inputs, batched, strict=True):
        solo = encode_clips(model, [c])[0]
        assert b.scale.tolist() == solo.scale.tolist()
        assert b.text.shape == solo.text.shape and b.view_state.shape == solo.view_state.shape
        for x, y in zip(b.enc["fpn"], solo.enc["fpn"], strict=True):
            assert x.shape == y.shape and torch.allclose(x, y, atol=1e-4)
        assert torch.allclose(b.cand.boxes, solo.cand.boxes, atol=1e-3)
        assert torch.allclose(b.cand.refer_logits, solo.cand.refer_logits, atol=1e-4)
        assert torch.allclose(b.text_ref, solo.text_ref, atol=1e-4)


def test_streams_encoded_in_one_batch_track_as_alone(model, monkeypatch):
    calls = []
    encode = model.encode_clip

    def counted(frames, text, *args):
        calls.append((int(frames.shape[0]), int(text["input_ids"].shape[0])))
        return encode(frames, text, *args)

    plain = _run(model, STREAMS, 8, batched=False)
    monkeypatch.setattr(model, "encode_clip", counted)
    batched = _run(model, STREAMS, 8, batched=True)
    # per clip: the three 2-view streams in one call, the 3-view one and the
    # two-expression one alone; 2 full clips, then each stream's flushed partial clip
    assert calls[:3] == [(3, 3), (1, 1), (1, 2)] and calls[3:6] == calls[:3]
    assert len(calls) == 6 + len(STREAMS)
    for p, b in zip(plain, batched, strict=True):
        assert len(p) > 10
        assert [o[:5] for o in p] == [o[:5] for o in b]  # frames, views, track and global ids
        assert max(float(np.abs(x[5] - y[5]).max()) for x, y in zip(p, b, strict=True)) < 1e-3
        assert max(abs(x[6] - y[6]) for x, y in zip(p, b, strict=True)) < 1e-3
