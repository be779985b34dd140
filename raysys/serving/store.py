"""The streams' registry and tracker checkpoints, outside the replicas (a detached actor).

One :class:`StreamStore` per service holds, per stream: its settings, its status (live,
deleted, expired), which replica holds it and under which ``epoch``, and the checkpoint
of its tracker taken at the last clip boundary (:func:`raysys.tracking.state.export_state`
arrays + JSON metadata, with the stream's recent answers). A replica *leases* a stream
before each request: the store confirms that the replica's copy is the current one, or
hands it the checkpoint to restore (another replica held it: a replica died, the stream
was re-routed). A new lease bumps the epoch, so a replica's stale copy is never used
again and its checkpoints are refused. Idle streams expire after the TTL.
"""

from __future__ import annotations

import time
import uuid
from collections import deque

__all__ = ["StreamStore", "STORE_NAME", "NAMESPACE", "get_store"]

STORE_NAME = "raysys_serve_store"
NAMESPACE = "raysys_serve"


def get_store(cfg):
    """The service's :class:`StreamStore` actor (detached, named, made on first use;
    ``cfg``: a :class:`~raysys.serving.config.ServeConfig`)."""
    import ray

    return ray.remote(StreamStore).options(
        name=STORE_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_concurrency=64).remote(cfg.ttl_s, cfg.max_streams)


class StreamStore:
    """Registry + checkpoints of the service's streams (run as a Ray actor)."""

    def __init__(self, ttl_s: float, max_streams: int) -> None:
        self.ttl_s, self.max_streams = ttl_s, max_streams
        self.streams: dict[str, dict] = {}
        self.gone: dict[str, str] = {}  # stream id -> "deleted" | "expired"
        self.frames_total = 0
        self.rate: deque = deque(maxlen=4096)  # (time, frame sets) of checkpoints
        self.encoders: dict[str, dict] = {}  # replica -> its batched encoder's counters
        self._swept = 0.0

    def configure(self, ttl_s: float, max_streams: int) -> None:
        self.ttl_s, self.max_streams = ttl_s, max_streams

    def create(self, spec: dict) -> dict:
        self._sweep()
        if len(self.streams) >= self.max_streams:
            return {"status": "full", "live": len(self.streams)}
        sid = uuid.uuid4().hex
        self.streams[sid] = {"spec": spec, "owner": None, "epoch": 0, "ckpt": None,
                             "seen": time.monotonic(), "frames": 0, "state_bytes": 0}
        return {"status": "ok", "stream_id": sid}

    def lease(self, sid: str, replica: str, epoch: int | None) -> dict:
        """Confirm ``replica``'s copy (``epoch``) or hand over the checkpoint to restore."""
        self._sweep()
        s = self.streams.get(sid)
        if s is None:
            return {"status": self.gone.get(sid, "unknown")}
        s["seen"] = time.monotonic()
        if s["owner"] == replica and epoch == s["epoch"]:
            return {"status": "ok", "epoch": epoch}
        s["owner"], s["epoch"] = replica, s["epoch"] + 1
        return {"status": "restore", "epoch": s["epoch"], "spec": s["spec"],
                "ckpt": s["ckpt"]}

    def checkpoint(self, sid: str, replica: str, epoch: int, ckpt: dict, frames: int,
                   state_bytes: int, encoder: dict | None = None) -> bool:
        """Keep ``ckpt`` (the tracker at a clip boundary) if ``replica`` holds the lease;
        ``frames``: frame sets tracked since the last checkpoint; ``encoder``: the
        replica's counters of batched encoder passes (for ``/metrics``)."""
        if encoder is not None:
            self.encoders[replica] = dict(encoder)
        s = self.streams.get(sid)
        if s is None or s["owner"] != replica or s["epoch"] != epoch:
            return False
        s["ckpt"], s["state_bytes"] = ckpt, state_bytes
        s["frames"] += frames
        self.frames_total += frames
        self.rate.append((time.monotonic(), frames))
        return True

    def delete(self, sid: str) -> str:
        if self.streams.pop(sid, None) is None:
            return self.gone.get(sid, "unknown")
        self.gone[sid] = "deleted"
        return "ok"

    def info(self, sid: str) -> dict | None:
        s = self.streams.get(sid)
        if s is None:
            return None
        return {"owner": s["owner"], "epoch": s["epoch"], "frames": s["frames"],
                "state_bytes": s["state_bytes"], "idle_s": time.monotonic() - s["seen"]}

    def stats(self, window_s: float = 10.0) -> dict:
        self._sweep()
        now = time.monotonic()
        recent = sum(n for t, n in self.rate if t >= now - window_s)
        return {"streams": len(self.streams), "frame_sets_total": self.frames_total,
                "frame_sets_per_second": recent / window_s,
                "state_bytes": sum(s["state_bytes"] for s in self.streams.values()),
                "expired": sum(1 for v in self.gone.values() if v == "expired"),
                "owners": sorted({s["owner"] for s in self.streams.values() if s["owner"]}),
                "encode_batches": sum(e["batches"] for e in self.encoders.values()),
                "encoded_clips": sum(e["clips"] for e in self.encoders.values()),
                "encode_batch_max": max((e["max_batch"] for e in self.encoders.values()),
                                        default=0)}

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept < 0.5:
            return
        self._swept = now
        for sid in [k for k, s in self.streams.items() if now - s["seen"] > self.ttl_s]:
            del self.streams[sid]
            self.gone[sid] = "expired"
        while len(self.gone) > 100_000:  # bounded tombstones
            self.gone.pop(next(iter(self.gone)))
