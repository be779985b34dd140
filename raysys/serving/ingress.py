"""The HTTP ingress of the tracking service: auth, parsing, limits, routing, errors.

Requests are checked here (token, content type, fields, sizes, images decoded in memory:
:mod:`raysys.serving.protocol`) and the frame sets of a stream go to the tracker replica
chosen by Ray Serve's consistent-hash router on the stream id (its session id), so a
stream stays with the replica that holds its tracker. A replica that died or is gone is
retried until the request timeout: the router then picks another, which restores the
stream from the store. A client may pipeline a stream (several frame sets in flight): the
ingress parses and decodes them as they come and queues them; one call at a time per
stream goes to the replica, in seq order, carrying every consecutive frame set queued by
then. So the network, parsing and decoding of the next frame sets overlap the tracking of
this one, the replica gets them without a round trip each, and a replica's request slots
never hold a frame set that waits for another. Every refusal is ``{"error": code,
"detail": ...}`` with a 4xx.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict

from raysys.serving.config import ServeConfig
from raysys.serving.protocol import (
    STREAM_ID,
    ApiError,
    check_token,
    decode_image,
    parse_create,
    parse_frames,
)
from raysys.serving.store import get_store
from raysys.serving.viewer import VIEWER_HTML, metrics_text

__all__ = ["Ingress"]


class Ingress:
    """Serve deployment class (``__call__`` gets every HTTP request)."""

    def __init__(self, tracker, cfg: ServeConfig) -> None:
        self.tracker, self.cfg = tracker, cfg
        self.store = get_store(cfg)
        self.codes: Counter = Counter()
        self.t0 = time.time()
        self.done: OrderedDict[str, int] = OrderedDict()  # stream -> last seq answered
        self.pending: dict[str, dict] = {}  # stream -> seq -> (images, came, futures)
        self.pumps: dict[str, asyncio.Task] = {}  # stream -> its pump
        self.order = asyncio.Condition()

    async def __call__(self, request):
        from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse

        try:
            status, body = await self._route(request)
        except ApiError as e:
            self.codes[e.status] += 1
            return JSONResponse(e.body(), status_code=e.status, headers=e.headers)
        self.codes[status] += 1
        if isinstance(body, str):
            cls = HTMLResponse if body.startswith("<!doctype html>") else PlainTextResponse
            return cls(body, status_code=status)
        return JSONResponse(body, status_code=status)

    async def _route(self, request) -> tuple[int, dict | str]:
        method, parts = request.method, [p for p in request.url.path.split("/") if p]
        if parts == [] and method == "GET":
            return 200, VIEWER_HTML
        if parts == ["healthz"] and method == "GET":
            return 200, {"status": "ok", "uptime_s": round(time.time() - self.t0, 1)}
        check_token(request.headers.get("authorization"), self.cfg.token)
        if parts == ["metrics"] and method == "GET":
            stats = await self.store.stats.remote()
            return 200, metrics_text(stats, self.codes)
        if parts[:2] != ["v1", "streams"] or len(parts) > 4:
            raise ApiError(404, "not_found", f"no route {request.url.path}; see GET / and "
                           "/v1/streams")
        if len(parts) == 2:
            _method(method, "POST")
            return await self._create(request)
        sid = parts[2]
        if not STREAM_ID.match(sid):
            raise ApiError(404, "unknown_stream", f"no stream {sid[:64]!r}: stream ids are "
                           "32 hex digits from POST /v1/streams")
        if len(parts) == 4:
            if parts[3] == "frames":
                _method(method, "POST")
                return 200, await self._frames(request, sid)
            if parts[3] == "view":
                _method(method, "GET")
                return 200, await self._call(sid, "view")
            raise ApiError(404, "not_found", f"no route {request.url.path}")
        _method(method, "GET", "DELETE")
        return 200, await self._call(sid, "info" if method == "GET" else "delete")

    async def _body(self, request) -> bytes:
        n = request.headers.get("content-length")
        if n is not None and n.isdigit() and int(n) > self.cfg.max_request_bytes:
            raise ApiError(413, "request_too_large", f"{n} bytes; at most "
                           f"{self.cfg.max_request_bytes} per request")
        return await request.body()

    async def _create(self, request) -> tuple[int, dict]:
        req = parse_create(await self._body(request), request.headers.get("content-type"),
                           self.cfg)
        r = await self.store.create.remote({"expression": req.expression, "views": req.views,
                                            "category": req.category})
        if r["status"] == "full":
            raise ApiError(429, "too_many_streams", f"{r['live']} live streams, the most this "
                           "service holds; delete one or retry later",
                           headers={"Retry-After": "10"})
        return 201, {"stream_id": r["stream_id"]}

    async def _frames(self, request, sid: str) -> dict:
        req = parse_frames(await self._body(request), request.headers.get("content-type"),
                           self.cfg)
        images = await asyncio.to_thread(
            lambda: [decode_image(b, k, self.cfg) for k, b in enumerate(req.images)])
        return await self._submit(sid, req.seq, images)

    async def _submit(self, sid: str, seq: int, images: list) -> dict:
        """Queue a decoded frame set of ``sid`` and wait for its answer. One pump per stream
        (:meth:`_pump`) hands the queued frame sets to the replica in seq order."""
        fut = asyncio.get_running_loop().create_future()
        async with self.order:
            q = self.pending.setdefault(sid, {})
            if seq in q:  # the same seq re-sent while queued: one answer for both
                q[seq][2].append(fut)
            else:
                q[seq] = (images, time.monotonic(), [fut])
            if sid not in self.pumps:
                self.pumps[sid] = asyncio.create_task(self._pump(sid))
            self.order.notify_all()
        return await fut

    async def _pump(self, sid: str) -> None:
        """Hand ``sid``'s queued frame sets to its replica in seq order, one call at a time.
        Consecutive ones queued together (a pipelining client's) go in one call, up to
        ``pipeline_depth``: the replica then works through them without waiting for the
        round trip of each, and leases the stream once per call."""
        try:
            while True:
                async with self.order:
                    batch = await self._next_batch(sid)
                    if not batch:
                        self.pumps.pop(sid, None)
                        return
                await self._send(sid, batch)
        except BaseException:
            self.pumps.pop(sid, None)
            raise

    async def _next_batch(self, sid: str) -> list:
        """(seq, images, futures) to send next, the condition held: re-sent seqs at or below
        the last answered, then the run of consecutive seqs from the next one due. A seq
        further ahead waits for its predecessors, at most ``pipeline_wait_s`` since it came,
        unless it is ``pipeline_depth`` or more ahead of the next due: then it goes on alone,
        and the replica answers it (409 with the seq it expects)."""
        depth, wait = self.cfg.pipeline_depth, self.cfg.pipeline_wait_s
        while True:
            q = self.pending.get(sid)
            if not q:
                self.pending.pop(sid, None)
                return []
            last = self.done.get(sid, -1)
            due = sorted(s for s in q if s <= last)
            nxt = last + 1
            while nxt in q and len(due) < depth:
                due.append(nxt)
                nxt += 1
            if not due:
                now = time.monotonic()
                late = [s for s in sorted(q) if s - last > depth or now - q[s][1] >= wait]
                due = late[:1]
            if due:
                return [(s, *q.pop(s)[::2]) for s in due]
            left = min(q[s][1] for s in q) + wait - time.monotonic()
            try:
                await asyncio.wait_for(self.order.wait(), max(left, 0.001))
            except TimeoutError:
                pass

    async def _send(self, sid: str, batch: list) -> None:
        """One replica call for ``batch``; each frame set's answer (or refusal) to its
        waiters. The next due seq moves past every accepted one, and past a refused one only
        when it was the next due (a refusal out of order releases nothing)."""
        try:
            answers = await self._call(sid, "frames", [(s, im) for s, im, _ in batch])
        except Exception as e:  # noqa: BLE001  (an ApiError, or the call failed)
            answers = [e] * len(batch)
        async with self.order:
            last = self.done.pop(sid, -1)
            for (seq, _, futs), a in zip(batch, answers, strict=True):
                ok = isinstance(a, dict) and "ok" in a
                last = max(last, seq) if ok or seq == last + 1 else last
                for f in futs:
                    if f.done():
                        continue
                    if ok:
                        f.set_result(a["ok"])
                    elif isinstance(a, dict):
                        f.set_exception(ApiError.from_fields(a["error"]))
                    else:
                        f.set_exception(a)
            self.done[sid] = last
            while len(self.done) > 10_000:  # bounded: the longest idle streams go first
                self.done.popitem(last=False)
            self.order.notify_all()

    async def _call(self, sid: str, method: str, *args) -> dict:
        """``method`` on the replica holding ``sid``; retried while replicas come and go."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        deadline = time.monotonic() + self.cfg.request_timeout_s
        handle = getattr(self.tracker.options(session_id=sid), method)
        while True:
            left = deadline - time.monotonic()
            try:
                r = await asyncio.wait_for(handle.remote(sid, *args), timeout=max(left, 0.01))
                break
            except BackPressureError:
                raise ApiError(429, "busy", "the replica holding this stream is at its "
                               "queue limit; retry after Retry-After seconds",
                               headers={"Retry-After": "1"}) from None
            except TimeoutError:
                raise ApiError(408, "timeout", f"not answered within "
                               f"{self.cfg.request_timeout_s:g} s; re-send the same request "
                               "(seq makes it safe)") from None
            except (ActorDiedError, ActorUnavailableError, RayActorError,
                    DeploymentUnavailableError):
                if time.monotonic() + 0.5 > deadline:
                    raise ApiError(408, "timeout", "no replica could take the stream in "
                                   "time; re-send the same request") from None
                await asyncio.sleep(0.5)  # the router learns the replica is gone
        if "error" in r:
            raise ApiError.from_fields(r["error"])
        return r["ok"]


def _method(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError(405, "method_not_allowed", f"{method} is not allowed here; use "
                       f"{' or '.join(allowed)}", headers={"Allow": ", ".join(allowed)})
