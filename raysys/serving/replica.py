"""A tracker replica: one ViewSAM, the online trackers of the streams routed to it.

Each stream has a :class:`~raysys.tracking.tracker.MultiExpressionTracker` (paper §3.3:
per clip of ``T`` frame sets the encoder with the view token and VC-CMA, Eq. 3-7, SAM2
with BAR per track, Eq. 8-9, CGCT identities, Eq. 10-11). Before each call the replica
leases the stream from the :class:`~raysys.serving.store.StreamStore` (restoring the
store's checkpoint when another replica held it), and at each clip boundary it writes the
tracker's state back (:mod:`raysys.tracking.state`, its arrays packed into one buffer)
before answering. ``seq`` orders the frame sets: a re-sent seq gets its kept answer and is
not applied twice; a gap is refused with the next seq expected. (A pipelining client's
frame sets reach a replica in seq order, one call at a time per stream, each call with the
consecutive frame sets the ingress queued meanwhile: the ingress sees to it.)

The per-clip encoder (Eq. 3-7 and 14-18, :mod:`raysys.tracking.encode`) runs batched
across the replica's streams: a frame set that completes its stream's clip hands the clip
to :meth:`TrackerReplica._encode`, a ``@serve.batch`` method that encodes the clips arriving
within ``encode_batch_wait_s`` (at most ``encode_batch_size``) in one pass; each stream then
tracks its clip on its own.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field, replace

import numpy as np
from ray import serve

from raysys.serving.config import ServeConfig
from raysys.serving.protocol import ApiError
from raysys.serving.store import get_store

__all__ = ["TrackerReplica", "track_rows"]

_ACTIVE_S = 10.0  # a stream that sent a frame set this recently may join an encoder batch


def track_rows(results) -> list[dict]:
    """The API's tracks of a tracker's :class:`FrameResult` list: frame, view, global id,
    box ``[x1, y1, x2, y2]`` in input pixels, score."""
    return [{"frame": r.index, "view": k, "id": o.global_id,
             "box": [o.box[0], o.box[1], o.box[0] + o.box[2], o.box[1] + o.box[3]],
             "score": o.score}
            for r in results for k, objs in enumerate(r.views) for o in objs]


@dataclass
class _Stream:
    tracker: object
    epoch: int
    spec: dict
    answers: OrderedDict = field(default_factory=OrderedDict)  # seq -> answer
    since_ckpt: int = 0  # frame sets since the last checkpoint
    view: dict | None = None  # the last tracked frame set (viewer)
    touched: float = field(default_factory=time.monotonic)

    @property
    def next_seq(self) -> int:
        return self.tracker.next_frame + len(self.tracker.buffer)


class TrackerReplica:
    """Serve deployment class (wrapped by :func:`raysys.serving.app.build_app`)."""

    def __init__(self, cfg: ServeConfig) -> None:
        import ray
        import torch

        from raysys.viewsam.checkpoint import load_viewsam_checkpoint

        torch.set_num_threads(cfg.torch_threads)
        ctx = ray.get_runtime_context()
        self._setup(cfg, load_viewsam_checkpoint(cfg.model, device="cpu").model.eval(),
                    get_store(cfg), ctx.get_actor_name() or ctx.get_actor_id())

    def _setup(self, cfg: ServeConfig, model, store, rid: str) -> None:
        """The replica's state: ``model`` (a ViewSAM), ``store`` (the
        :class:`~raysys.serving.store.StreamStore` actor's handle) and its name ``rid``."""
        from raysys.tracking.config import TrackConfig

        self.cfg, self.model, self.store, self.rid = cfg, model, store, rid
        self.track_cfg = replace(TrackConfig(**cfg.track), keep_masks=False)
        self.streams: dict[str, _Stream] = {}
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.encode_stats = {"batches": 0, "clips": 0, "max_batch": 0}
        self._encode.set_max_batch_size(min(cfg.encode_batch_size,
                                            cfg.max_ongoing_requests))
        self._encode.set_batch_wait_timeout_s(cfg.encode_batch_wait_s)

    # ------------------------------------------------------------------ leases
    def _new_tracker(self, spec: dict, ckpt: dict | None):
        from raysys.tracking.state import restore_state
        from raysys.tracking.tracker import MultiExpressionTracker

        if ckpt is None:
            return MultiExpressionTracker(self.model, [spec["expression"]], spec["views"],
                                          self.track_cfg), OrderedDict()
        return (restore_state(self.model, _unpack(*ckpt["arrays"]), ckpt["meta"]),
                OrderedDict((int(k), v) for k, v in ckpt["answers"]))

    async def _acquire(self, sid: str) -> _Stream:
        self._sweep()
        s = self.streams.get(sid)
        r = await self.store.lease.remote(sid, self.rid, s.epoch if s else None)
        if r["status"] != "ok":
            self.streams.pop(sid, None)
        if r["status"] in ("unknown", "deleted"):
            raise ApiError(404, "unknown_stream", f"no stream {sid}: create one with POST "
                           "/v1/streams")
        if r["status"] == "expired":
            raise ApiError(410, "stream_expired", f"stream {sid} was idle longer than "
                           f"{self.cfg.ttl_s:g} s and expired; create a new one")
        if r["status"] == "restore":
            tracker, answers = await asyncio.to_thread(self._new_tracker, r["spec"], r["ckpt"])
            s = _Stream(tracker, r["epoch"], r["spec"], answers)
            self.streams[sid] = s
        s.touched = time.monotonic()
        return s

    def _sweep(self) -> None:
        now = time.monotonic()
        for sid in [k for k, s in self.streams.items() if now - s.touched > self.cfg.ttl_s]:
            del self.streams[sid]

    # ------------------------------------------------------------------ requests
    async def _frames(self, sid: str, items: list) -> list[dict]:
        """``items``: (seq, images) of consecutive frame sets, tracked in order under one
        lease; one answer or refusal (``_guard``'s form) each."""
        out = []
        async with self.locks[sid]:
            s = None
            for seq, images in items:
                try:
                    if s is None or sid not in self.streams:  # first, or after a refusal
                        s = await self._acquire(sid)
                    out.append({"ok": await self._one(sid, s, seq, images)})
                except ApiError as e:
                    out.append(_error(e))
                    s = None
        return out

    async def _one(self, sid: str, s: _Stream, seq: int, images: list[np.ndarray]) -> dict:
        nxt = s.next_seq
        if seq < nxt:
            if seq in s.answers:
                return s.answers[seq]
            raise ApiError(409, "seq_too_old", f"seq {seq} was accepted long ago and its "
                           f"answer is no longer kept; the next seq is {nxt}",
                           expected_seq=nxt)
        if seq > nxt:
            raise ApiError(409, "seq_gap", f"seq {seq} skips frame sets: the next seq "
                           f"expected is {nxt} (re-send from there)", expected_seq=nxt)
        return await self._track(sid, s, seq, images)

    async def _track(self, sid: str, s: _Stream, seq: int, images: list[np.ndarray]) -> dict:
        from raysys.tracking.encode import clip_input

        self._check_frames(s, images)
        ci = await asyncio.to_thread(clip_input, s.tracker, images)
        enc = None if ci is None else await self._encode_now(ci)
        results = await asyncio.to_thread(s.tracker.step, images, enc)
        answer = {"accepted": seq, "tracks": track_rows(results[0])}
        s.answers[seq] = answer
        while len(s.answers) > self.cfg.answers_kept:
            s.answers.popitem(last=False)
        s.since_ckpt += 1
        if results[0]:
            s.view = {"frame": seq, "images": images,
                      "tracks": [t for t in answer["tracks"] if t["frame"] == seq]}
            await self._checkpoint(sid, s)
        return answer

    async def _encode_now(self, ci):
        """Encode a clip through the batched encoder. A batch holds at most as many clips
        as this replica has streams sending (a frame set within the last ``_ACTIVE_S``
        seconds), so a lone stream's clip does not wait ``encode_batch_wait_s`` for clips
        that cannot come."""
        now = time.monotonic()
        sending = sum(1 for s in self.streams.values() if now - s.touched < _ACTIVE_S)
        self._encode.set_max_batch_size(max(1, min(self.cfg.encode_batch_size, sending,
                                                   self.cfg.max_ongoing_requests)))
        return await self._encode(ci)

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.005)  # __init__ sets ServeConfig's
    async def _encode(self, inputs: list) -> list:
        """The clips (:class:`~raysys.tracking.encode.ClipInput`) that streams completed
        within the batch window, encoded in one pass: one ``ClipEncoding`` each."""
        from raysys.tracking.encode import encode_clips

        st = self.encode_stats
        st["batches"] += 1
        st["clips"] += len(inputs)
        st["max_batch"] = max(st["max_batch"], len(inputs))
        return await asyncio.to_thread(encode_clips, self.model, inputs)

    def _check_frames(self, s: _Stream, images: list[np.ndarray]) -> None:
        v = s.spec["views"]
        if len(images) != v:
            raise ApiError(422, "wrong_views", f"this stream has {v} views: send {v} images "
                           f"(view0 ... view{v - 1}), got {len(images)}")
        size = s.tracker.frame_size or images[0].shape[:2]
        for k, im in enumerate(images):
            if im.shape[:2] != tuple(size):
                raise ApiError(422, "frame_size", f"view {k}: {im.shape[1]}x{im.shape[0]} "
                               f"differs from the stream's {size[1]}x{size[0]}; send every "
                               "view at one size")

    async def _checkpoint(self, sid: str, s: _Stream) -> None:
        packed, meta = await asyncio.to_thread(_exported, s.tracker)
        ckpt = {"arrays": packed, "meta": meta, "answers": list(s.answers.items())}
        ok = await self.store.checkpoint.remote(sid, self.rid, s.epoch, ckpt, s.since_ckpt,
                                                s.tracker.state_bytes(), self.encode_stats)
        if not ok:  # another replica took the stream over meanwhile
            self.streams.pop(sid, None)
            raise ApiError(409, "stream_moved", "the stream moved to another replica while "
                           "this frame set was tracked; re-send this seq")
        s.since_ckpt = 0

    async def _delete(self, sid: str) -> dict:
        async with self.locks[sid]:
            s = await self._acquire(sid)
            results = await asyncio.to_thread(s.tracker.flush)
            await self.store.delete.remote(sid)
            self.streams.pop(sid, None)
            self.locks.pop(sid, None)
            return {"deleted": sid, "frames": s.next_seq, "tracks": track_rows(results[0])}

    async def _info(self, sid: str) -> dict:
        async with self.locks[sid]:
            s = await self._acquire(sid)
            q = s.tracker.queries[0]
            return {"stream_id": sid, "expression": s.spec["expression"],
                    "views": s.spec["views"], "frames_seen": s.next_seq,
                    "next_seq": s.next_seq, "live_tracks": s.tracker.num_live_tracks,
                    "identities": q.identities.next_id - 1,
                    "state_bytes": s.tracker.state_bytes(), "replica": self.rid,
                    "replica_encoder": dict(self.encode_stats)}

    async def _view(self, sid: str) -> dict:
        """The last tracked frame set, its images as JPEG (base64), and its tracks."""
        from PIL import Image

        async with self.locks[sid]:
            s = await self._acquire(sid)
            if s.view is None:
                return {"frame": None, "images": [], "tracks": []}
            imgs = []
            for im in s.view["images"]:
                buf = io.BytesIO()
                Image.fromarray(im).save(buf, format="JPEG", quality=80)
                imgs.append(base64.b64encode(buf.getvalue()).decode("ascii"))
            return {"frame": s.view["frame"], "images": imgs, "tracks": s.view["tracks"]}

    # each public method answers ``{"ok": body}`` or ``{"error": ApiError fields}``: an
    # exception would reach the ingress wrapped by Ray, its fields lost
    async def frames(self, sid: str, items: list) -> dict:
        """``items``: [(seq, images), ...], consecutive frame sets of ``sid`` (the ingress
        sends those a pipelining client has queued in one call); ``{"ok": [answer or
        refusal per item]}``."""
        return await _guard(self._frames(sid, items))

    async def delete(self, sid: str) -> dict:
        return await _guard(self._delete(sid))

    async def info(self, sid: str) -> dict:
        return await _guard(self._info(sid))

    async def view(self, sid: str) -> dict:
        return await _guard(self._view(sid))

    def ping(self) -> str:
        return self.rid


def _exported(tracker) -> tuple[tuple, dict]:
    """The tracker's state (:func:`~raysys.tracking.state.export_state`) with its arrays
    packed into one buffer: a state holds hundreds of small arrays (a few per track's
    memory), which cost far more to send to the store one by one (12 ms against 5 for a
    1 MB state on the 2-core machine)."""
    from raysys.tracking.state import export_state

    arrays, meta = export_state(tracker)
    names = list(arrays)
    parts = [np.ascontiguousarray(arrays[n]) for n in names]
    buf = np.concatenate([p.view(np.uint8).ravel() for p in parts]) if parts else \
        np.zeros(0, np.uint8)
    return (buf, [(n, p.dtype.str, np.shape(arrays[n]))  # 0-d arrays keep their shape
                  for n, p in zip(names, parts, strict=True)]), meta


def _unpack(buf: np.ndarray, index: list) -> dict[str, np.ndarray]:
    """The arrays of :func:`_exported`'s packed buffer, by name: views into it (read-only
    shared memory; :func:`~raysys.tracking.state.restore_state` copies what it takes)."""
    out, at = {}, 0
    for name, dtype, shape in index:
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        out[name] = buf[at:at + n].view(dt).reshape(shape)
        at += n
    return out


async def _guard(coro) -> dict:
    try:
        return {"ok": await coro}
    except ApiError as e:
        return _error(e)


def _error(e: ApiError) -> dict:
    return {"error": e.fields()}
