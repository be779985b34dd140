"""A pipelining client's frame sets at one replica, without a cluster (issue #23): the
replica applies a stream's frame sets in seq order whatever order they arrive in, and its
answers equal those of one-at-a-time sending; a seq that skips frame sets waits for them
at most ``pipeline_wait_s`` (then 409 with the seq expected) and one beyond
``pipeline_depth`` is refused at once; a lone stream's clip does not wait for an encoder
batch. The replica runs with the real :class:`StreamStore` called in process and the real
tiny ViewSAM (64 px, MiniLM, random weights, objectness forced on).
"""

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from raysys.serving.config import ServeConfig
from raysys.serving.store import StreamStore

pytest.importorskip("ray.serve")

OPEN = dict(refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0)


class _Local:
    """A :class:`StreamStore` called like an actor handle (``store.m.remote(...)``)."""

    def __init__(self, store):
        self.store = store

    def __getattr__(self, name):
        async def call(*args, **kwargs):
            return getattr(self.store, name)(*args, **kwargs)

        return SimpleNamespace(remote=call)


@pytest.fixture
def replica(tiny_viewsam, monkeypatch):
    """``make(**ServeConfig fields)``: a replica (and its store) outside a cluster; call it
    in the event loop that uses it (``@serve.batch``'s queue binds to that loop)."""
    from ray import serve

    from raysys.serving.replica import TrackerReplica

    # outside a replica, @serve.batch's queue reads the deployment's max_ongoing_requests
    ctx = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=8))
    monkeypatch.setattr(serve, "get_replica_context", lambda: ctx)

    def make(**kw):
        # @serve.batch keeps one queue per method (a replica process has one instance and
        # one loop); its queue, made in another test's loop, would never run here
        TrackerReplica._encode.set_max_batch_size.__self__._queue = None
        cfg = ServeConfig(model="unused", track=dict(clip_frames=2, **OPEN), **kw)
        rep = TrackerReplica.__new__(TrackerReplica)
        rep._setup(cfg, tiny_viewsam, _Local(StreamStore(cfg.ttl_s, cfg.max_streams)), "r0")
        return rep

    return make


def _frames(n=6, views=2):
    rng = np.random.default_rng(1)
    return [[rng.integers(0, 255, (48, 80, 3), dtype=np.uint8) for _ in range(views)]
            for _ in range(n)]


def _stream(rep) -> str:
    return rep.store.store.create({"expression": "a person", "views": 2,
                                   "category": "person"})["stream_id"]


def test_frame_sets_arriving_out_of_order_are_applied_in_seq_order(replica):
    frames = _frames()

    async def serial():
        rep = replica()
        sid = _stream(rep)
        return [await rep.frames(sid, k, f) for k, f in enumerate(frames)]

    async def piped():
        piped_rep = replica()
        sid = _stream(piped_rep)

        async def late(k, f, delay):
            await asyncio.sleep(delay)
            return await piped_rep.frames(sid, k, f)

        # every pair arrives successor first: 1 before 0, 3 before 2, 5 before 4
        delays = [0.05 * (k + (1 if k % 2 == 0 else -1)) for k in range(len(frames))]
        return await asyncio.gather(*(late(k, f, d)
                                      for k, (f, d) in enumerate(zip(frames, delays, strict=True))))

    want, got = asyncio.run(serial()), asyncio.run(piped())
    assert all("ok" in a for a in want), want
    assert sum(len(a["ok"]["tracks"]) for a in want) > 0  # objectness on: tracks to compare
    assert got == want


def test_a_gap_waits_for_its_predecessors_then_is_refused(replica):
    f = _frames(1)[0]

    async def go():
        rep = replica(pipeline_depth=4, pipeline_wait_s=0.3)
        sid = _stream(rep)
        t0 = time.monotonic()
        within = await rep.frames(sid, 2, f)  # 2 ahead of 0: waits, nobody sends 0 and 1
        waited = time.monotonic() - t0
        t0 = time.monotonic()
        beyond = await rep.frames(sid, 4, f)  # 4 ahead: refused at once
        return within, waited, beyond, time.monotonic() - t0

    within, waited, beyond, at_once = asyncio.run(go())
    for r in (within, beyond):
        assert r["error"]["status"] == 409 and r["error"]["code"] == "seq_gap"
        assert r["error"]["extra"] == {"expected_seq": 0}
    assert waited >= 0.3
    assert at_once < 0.3


def test_a_lone_stream_does_not_wait_for_an_encoder_batch(replica):
    """With a 30 s batch window, a lone stream's clip still goes at once (a batch holds at
    most the clips of the streams sending): the clip's frame set answers well within it."""
    frames = _frames(2)

    async def go():
        rep = replica(encode_batch_size=4, encode_batch_wait_s=30.0)
        sid = _stream(rep)
        await rep.frames(sid, 0, frames[0])
        t0 = time.monotonic()
        r = await rep.frames(sid, 1, frames[1])  # completes the clip of 2: encoded
        return rep, r, time.monotonic() - t0

    rep, r, dt = asyncio.run(go())
    assert "ok" in r and r["ok"]["tracks"]
    assert dt < 30.0
    assert rep.encode_stats == {"batches": 1, "clips": 1, "max_batch": 1}


def test_ingress_hands_a_streams_frame_sets_on_in_seq_order():
    """Frame sets parsed out of order (2, then 1, then 0) go to the router as 0, 1, 2; a
    frame set whose predecessor never comes goes on after the ingress's bounded wait."""
    from collections import OrderedDict

    from raysys.serving import ingress

    ing = ingress.Ingress.__new__(ingress.Ingress)  # the ordering only: no cluster
    ing.sent, handed = OrderedDict(), []

    async def request(sid, seq, delay):
        await asyncio.sleep(delay)
        await ing._wait_turn(sid, seq)
        handed.append((sid, seq))
        await ing._handed_on(sid, seq)

    async def go():
        ing.order = asyncio.Condition()
        await asyncio.gather(request("a", 2, 0.0), request("a", 1, 0.05),
                             request("a", 0, 0.1), request("b", 0, 0.02))
        t0 = time.monotonic()
        await request("a", 5, 0.0)  # 3 and 4 never come
        return time.monotonic() - t0

    waited = asyncio.run(go())
    assert [s for sid, s in handed if sid == "a"] == [0, 1, 2, 5]
    assert handed.index(("b", 0)) < handed.index(("a", 0))  # other streams do not wait
    assert waited >= ingress._ORDER_WAIT_S
    assert dict(ing.sent) == {"a": 5, "b": 0}
