"""The replica's ``@serve.batch`` of the per-clip encoder (issue #23 item 4), without a
cluster: clips handed to ``TrackerReplica._encode`` concurrently go through the encoder as
one batch (``raysys.tracking.encode``), each caller gets its own row, and the ServeConfig
knobs bound the batch. Real tiny ViewSAM (64 px, MiniLM), random weights.
"""

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from raysys.tracking import MultiExpressionTracker, TrackConfig
from raysys.tracking.encode import clip_input, encode_clips

pytest.importorskip("ray.serve")

OPEN = dict(refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0)


@pytest.fixture(scope="module")
def model(tiny_viewsam):
    return tiny_viewsam


def _inputs(model, expressions):
    """Each stream one frame set short of its clip of 2; the clips its next one completes."""
    cfg = TrackConfig(clip_frames=2, keep_masks=False, **OPEN)
    rng = np.random.default_rng(0)
    out = []
    for e in expressions:
        tr = MultiExpressionTracker(model, [e], 2, cfg)
        tr.step([rng.integers(0, 255, (48, 80, 3), dtype=np.uint8) for _ in range(2)])
        out.append(clip_input(tr, [rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
                                   for _ in range(2)]))
    return out


def _replica(model, fresh_encode_queue):
    from raysys.serving.replica import TrackerReplica

    fresh_encode_queue()
    rep = TrackerReplica.__new__(TrackerReplica)  # the model and counters only: no cluster
    rep.model = model
    rep.encode_stats = {"batches": 0, "clips": 0, "max_batch": 0}
    return rep


def test_concurrent_clips_share_one_encoder_pass(model, monkeypatch, fresh_encode_queue):
    from ray import serve

    # outside a replica, @serve.batch's queue reads the deployment's max_ongoing_requests
    ctx = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=8))
    monkeypatch.setattr(serve, "get_replica_context", lambda: ctx)
    inputs = _inputs(model, ["a person in a red coat", "a man", "a woman with a bag"])
    direct = encode_clips(model, inputs)
    rep = _replica(model, fresh_encode_queue)

    async def both():
        rep._encode.set_max_batch_size(8)
        rep._encode.set_batch_wait_timeout_s(1.0)  # all three arrive well within it
        batched = await asyncio.gather(*(rep._encode(c) for c in inputs))
        stats = dict(rep.encode_stats)
        rep._encode.set_max_batch_size(1)  # encode_batch_size = 1: one pass per clip
        single = await asyncio.gather(*(rep._encode(c) for c in inputs))
        return batched, stats, single

    batched, stats, single = asyncio.run(both())
    assert stats == {"batches": 1, "clips": 3, "max_batch": 3}
    assert rep.encode_stats == {"batches": 4, "clips": 6, "max_batch": 3}
    for got, want, alone in zip(batched, direct, single, strict=True):
        # each caller got its own row of the one pass
        assert torch.equal(got.enc["fpn"][-1], want.enc["fpn"][-1])
        assert torch.equal(got.cand.boxes, want.cand.boxes)
        assert torch.equal(got.text_ref, want.text_ref)
        assert torch.allclose(got.enc["fpn"][-1], alone.enc["fpn"][-1], atol=1e-4)
    assert not torch.equal(batched[0].text_ref, batched[1].text_ref)


def test_serve_config_batch_knobs():
    from raysys.serving.app import config_from_args
    from raysys.serving.config import ServeConfig

    cfg = config_from_args({"model": "m", "encode_batch_size": "4",
                            "encode_batch_wait_s": "0.02"})
    assert (cfg.encode_batch_size, cfg.encode_batch_wait_s) == (4, 0.02)
    assert (ServeConfig(model="m").encode_batch_size, ServeConfig(model="m").encode_batch_wait_s
            ) == (4, 0.005)
    with pytest.raises(ValueError, match="encode_batch_size"):
        ServeConfig(model="m", encode_batch_size=0)
