"""The streams' store (a plain class; Ray runs it as an actor): leases, epochs that make a
stale replica's copy and checkpoints void, TTL expiry, the live-stream limit."""

import time

from raysys.serving.store import StreamStore

SPEC = {"expression": "a man", "views": 2, "category": "person"}


def test_lease_moves_a_stream_and_voids_the_stale_copy():
    st = StreamStore(ttl_s=60, max_streams=4)
    sid = st.create(SPEC)["stream_id"]
    a = st.lease(sid, "A", None)
    assert a["status"] == "restore" and a["ckpt"] is None and a["spec"] == SPEC
    assert st.lease(sid, "A", a["epoch"]) == {"status": "ok", "epoch": a["epoch"]}
    assert st.checkpoint(sid, "A", a["epoch"], {"x": 1}, frames=4, state_bytes=10)
    b = st.lease(sid, "B", None)  # the stream moved to B: B restores A's checkpoint
    assert b["status"] == "restore" and b["ckpt"] == {"x": 1} and b["epoch"] > a["epoch"]
    # A's copy is stale: its next lease hands it the checkpoint again (a new epoch), and a
    # checkpoint under its old epoch is refused
    assert not st.checkpoint(sid, "A", a["epoch"], {"x": 2}, frames=4, state_bytes=10)
    assert st.lease(sid, "A", a["epoch"])["status"] == "restore"
    assert not st.checkpoint(sid, "B", b["epoch"], {"x": 3}, frames=4, state_bytes=10)
    s = st.stats()
    assert s["streams"] == 1 and s["frame_sets_total"] == 4 and s["state_bytes"] == 10


def test_delete_expire_and_limit():
    st = StreamStore(ttl_s=0.2, max_streams=2)
    one, two = st.create(SPEC)["stream_id"], st.create(SPEC)["stream_id"]
    assert st.create(SPEC) == {"status": "full", "live": 2}
    assert st.delete(one) == "ok" and st.lease(one, "A", None)["status"] == "deleted"
    assert st.lease("f" * 32, "A", None)["status"] == "unknown"
    time.sleep(0.8)
    assert st.lease(two, "A", None)["status"] == "expired"
    assert st.stats()["expired"] == 1 and st.create(SPEC)["status"] == "ok"
