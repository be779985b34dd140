"""A pipelining client's frame sets, without a cluster (issue #23). The ingress hands a
stream's frame sets to the replica in seq order whatever order they come in, one call at a
time, the consecutive ones queued meanwhile together in one call, and the replica's answers
equal those of one-at-a-time sending; a seq whose predecessor never comes goes on after
``pipeline_wait_s``, one ``pipeline_depth`` ahead at once, and the replica refuses both
with the seq it expects. A lone stream's clip does not
wait for an encoder batch. The replica runs with the real :class:`StreamStore` called in
process and the real tiny ViewSAM (64 px, MiniLM, random weights, objectness forced on).
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
def replica(tiny_viewsam, monkeypatch, fresh_encode_queue):
    """``make(**ServeConfig fields)``: a replica (and its store) outside a cluster; call it
    in the event loop that uses it (``@serve.batch``'s queue binds to that loop)."""
    from ray import serve

    from raysys.serving.replica import TrackerReplica

    # outside a replica, @serve.batch's queue reads the deployment's max_ongoing_requests
    ctx = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=8))
    monkeypatch.setattr(serve, "get_replica_context", lambda: ctx)

    def make(**kw):
        fresh_encode_queue()
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


def _ingress(rep, **kw):
    """An ingress whose tracker calls go to ``rep`` in process; ``calls``: (seqs, start,
    end) of each call."""
    from collections import OrderedDict

    from raysys.serving import ingress

    ing = ingress.Ingress.__new__(ingress.Ingress)  # the ordering only: no HTTP, no cluster
    ing.cfg = ServeConfig(model="unused", **kw)
    ing.done, ing.order, ing.calls = OrderedDict(), asyncio.Condition(), []
    ing.pending, ing.pumps = {}, {}

    async def call(sid, method, items):
        t0 = time.monotonic()
        await asyncio.sleep(0.01)  # the hop: a successor would overtake here
        r = await rep.frames(sid, items)
        ing.calls.append(([s for s, _ in items], t0, time.monotonic()))
        return r["ok"]

    ing._call = call
    return ing


async def _through(ing, sid, seq, images, delay=0.0):
    """The frames request's path in the ingress after decoding (``Ingress._frames``), its
    answer or refusal in the replica's form."""
    from raysys.serving.protocol import ApiError
    from raysys.serving.replica import _error

    await asyncio.sleep(delay)
    try:
        return {"ok": await ing._submit(sid, seq, images)}
    except ApiError as e:
        return _error(e)


def _serial(replica, frames):
    """The answers of a fresh replica sent ``frames`` one at a time, without the ingress."""
    async def go():
        rep = replica()
        sid = _stream(rep)
        return [(await rep.frames(sid, [(k, f)]))["ok"][0] for k, f in enumerate(frames)]

    return asyncio.run(go())


async def _send_all(ing, sid, frames, delays):
    """Every frame set through the ingress at once, each after its delay."""
    return await asyncio.gather(*(_through(ing, sid, k, f, d) for k, (f, d)
                                  in enumerate(zip(frames, delays, strict=True))))


def test_a_pipelined_stream_reaches_the_replica_in_order_one_call_at_a_time(replica):
    frames = _frames()

    async def piped():
        rep = replica()
        ing = _ingress(rep, pipeline_depth=8)
        # every pair comes successor first: 1 before 0, 3 before 2, 5 before 4
        delays = [0.03 * (k + (1 if k % 2 == 0 else -1)) for k in range(len(frames))]
        return await _send_all(ing, _stream(rep), frames, delays), ing.calls

    want = _serial(replica, frames)
    got, calls = asyncio.run(piped())
    assert all("ok" in a for a in want), want
    assert sum(len(a["ok"]["tracks"]) for a in want) > 0  # objectness on: tracks to compare
    assert got == want
    assert [s for c in calls for s in c[0]] == list(range(len(frames)))
    assert all(b[1] >= a[2] for a, b in zip(calls, calls[1:], strict=False))  # no overlap


def test_frame_sets_queued_meanwhile_go_in_one_call(replica):
    """While the replica tracks seq 0, seqs 1-4 come (a client keeping 4 in flight): they
    reach it in one call (``pipeline_depth`` 4 at most) and one lease, with the answers of
    one-at-a-time sending; seq 5, queued behind them, goes in the next call."""
    frames = _frames()

    async def piped():
        rep = replica()
        ing = _ingress(rep, pipeline_depth=4)
        leases, lease = [], rep.store.store.lease

        def counted(*args):
            leases.append(args[0])
            return lease(*args)

        rep.store.store.lease = counted
        delays = [0.0] + [0.002] * (len(frames) - 1)
        return await _send_all(ing, _stream(rep), frames, delays), ing.calls, len(leases)

    want = _serial(replica, frames)
    got, calls, leases = asyncio.run(piped())
    assert got == want
    assert [c[0] for c in calls] == [[0], [1, 2, 3, 4], [5]]
    assert leases == len(calls)


def test_a_seq_sent_twice_while_queued_is_tracked_once(replica):
    """Seq 1 comes twice while seq 0 is being tracked: both requests get the one answer,
    and the replica sees seq 1 once."""
    frames = _frames(2)

    async def go():
        rep = replica()
        ing = _ingress(rep)
        sid = _stream(rep)
        got = await asyncio.gather(_through(ing, sid, 0, frames[0]),
                                   _through(ing, sid, 1, frames[1], 0.002),
                                   _through(ing, sid, 1, frames[1], 0.004))
        return got, ing.calls

    got, calls = asyncio.run(go())
    assert all("ok" in g for g in got)
    assert got[1] == got[2] and got[1]["ok"]["accepted"] == 1
    assert [c[0] for c in calls] == [[0], [1]]


def test_a_gap_goes_on_after_the_wait_and_the_replica_refuses_it(replica):
    f = _frames(1)[0]

    async def go():
        rep = replica()
        ing = _ingress(rep, pipeline_depth=4, pipeline_wait_s=0.3)
        sid = _stream(rep)
        t0 = time.monotonic()
        beyond = await _through(ing, sid, 4, f)  # 4 ahead of the start: goes at once
        at_once = time.monotonic() - t0
        t0 = time.monotonic()
        within = await _through(ing, sid, 2, f)  # 2 ahead: waits, nobody sends 0 and 1
        waited = time.monotonic() - t0
        first = await _through(ing, sid, 0, f)  # the refusals let nothing jump the queue
        return beyond, at_once, within, waited, first, dict(ing.done)

    beyond, at_once, within, waited, first, done = asyncio.run(go())
    for r in (beyond, within):
        assert r["error"]["status"] == 409 and r["error"]["code"] == "seq_gap"
        assert r["error"]["extra"] == {"expected_seq": 0}
    assert at_once < 0.3 <= waited
    assert "ok" in first and list(done.values()) == [0]


def test_a_lone_stream_does_not_wait_for_an_encoder_batch(replica):
    """With a 30 s batch window, a lone stream's clip still goes at once (a batch holds at
    most the clips of the streams sending): the clip's frame set answers well within it."""
    frames = _frames(2)

    async def go():
        rep = replica(encode_batch_size=4, encode_batch_wait_s=30.0)
        sid = _stream(rep)
        await rep.frames(sid, [(0, frames[0])])
        t0 = time.monotonic()
        r = (await rep.frames(sid, [(1, frames[1])]))["ok"][0]  # completes the clip of 2
        return rep, r, time.monotonic() - t0

    rep, r, dt = asyncio.run(go())
    assert "ok" in r and r["ok"]["tracks"]
    assert dt < 30.0
    assert rep.encode_stats == {"batches": 1, "clips": 1, "max_batch": 1}
