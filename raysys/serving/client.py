"""A small Python client of the tracking service (used by the tests and the benchmark).

:meth:`StreamClient.run` sends a stream's frame sets in order and follows the protocol's
recovery rules: a 409 with ``expected_seq`` (the stream was restored on another replica
from its last clip-boundary checkpoint) rewinds to that seq and re-sends from there (the
client keeps the frame sets it sent since; re-sent seqs are idempotent), and a 429 or 408
is retried after ``Retry-After``. With ``depth`` > 1 it pipelines: several frame sets in
flight, which the service applies in seq order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

__all__ = ["StreamClient", "multipart_frames"]


def multipart_frames(seq: int, images: Sequence[bytes]) -> dict:
    """``requests`` ``files=`` of one frame set (JPEG/PNG bytes per view)."""
    files = {"seq": (None, str(seq))}
    files.update({f"view{k}": (f"view{k}.jpg", b, "image/jpeg") for k, b in enumerate(images)})
    return files


class StreamClient:
    """HTTP client of one service (``base``: ``http://127.0.0.1:8000``)."""

    def __init__(self, base: str, token: str | None = None, timeout: float = 120.0) -> None:
        import requests

        self.base, self.timeout = base.rstrip("/"), timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.rewinds = 0
        self.retries = 0
        self._local = threading.local()  # a session per sending thread

    def create(self, expression: str, views: int) -> str:
        r = self.session.post(f"{self.base}/v1/streams", timeout=self.timeout,
                              json={"expression": expression, "views": views})
        r.raise_for_status()
        return r.json()["stream_id"]

    def send(self, sid: str, seq: int, images: Sequence[bytes], session=None):
        """POST one frame set (``session``: another ``requests.Session`` than this one's)."""
        return (session or self.session).post(f"{self.base}/v1/streams/{sid}/frames",
                                              files=multipart_frames(seq, images),
                                              timeout=self.timeout)

    def _send_here(self, sid: str, seq: int, images: Sequence[bytes]):
        """:meth:`send` on this thread's own session (a pipelining client's threads)."""
        import requests

        sess = getattr(self._local, "session", None)
        if sess is None:
            sess = self._local.session = requests.Session()
            sess.headers.update(self.session.headers)
        return self.send(sid, seq, images, sess)

    def run(self, sid: str, frames: Sequence[Sequence[bytes]],
            on_answer: Callable[[int, float], None] | None = None,
            before: Callable[[int], None] | None = None, delete: bool = True,
            depth: int = 1) -> list[dict]:
        """Send ``frames`` (per frame set, bytes per view) as seq 0, 1, ...; returns every
        track row answered (each frame set's once), the DELETE's flush included.
        ``depth``: frame sets in flight at once (1: one at a time; more pipelines them,
        up to the service's ``pipeline_depth``, so the network hops overlap the tracking).
        Answers are taken in seq order; any refusal drains the frame sets in flight and
        resumes where the protocol says. ``on_answer(seq, seconds)`` per accepted frame
        set; ``before(seq)`` before each send (a test's hook)."""
        from concurrent.futures import ThreadPoolExecutor

        tracks: dict[int, list[dict]] = {}
        seq, flying = 0, deque()  # (seq, start time, future) in seq order
        with ThreadPoolExecutor(max(1, depth), thread_name_prefix="raysys-client") as pool:
            while seq < len(frames) or flying:
                while seq < len(frames) and len(flying) < max(1, depth):
                    if before is not None:
                        before(seq)
                    flying.append((seq, time.perf_counter(),
                                   pool.submit(self._send_here, sid, seq, frames[seq])))
                    seq += 1
                k, t0, fut = flying.popleft()
                r = fut.result()
                if r.status_code == 200:
                    for t in r.json()["tracks"]:
                        tracks.setdefault(t["frame"], []).append(t)
                    if on_answer is not None:
                        on_answer(k, time.perf_counter() - t0)
                    continue
                for _, _, f in flying:  # answers after a refusal are not taken: re-sent
                    f.result()
                flying.clear()
                seq = self._resume(r, k, tracks)
        if delete:
            r = self.session.delete(f"{self.base}/v1/streams/{sid}", timeout=self.timeout)
            r.raise_for_status()
            for t in r.json()["tracks"]:
                tracks.setdefault(t["frame"], []).append(t)
        return [t for f in sorted(tracks) for t in tracks[f]]

    def _resume(self, r, seq: int, tracks: dict[int, list[dict]]) -> int:
        """The seq to send next after refusal ``r`` of ``seq`` (the protocol's rules)."""
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") \
            else {}
        if r.status_code == 409 and "expected_seq" in body:
            self.rewinds += 1
            exp = int(body["expected_seq"])
            for f in [f for f in tracks if f >= exp]:  # answered again on re-send
                del tracks[f]
            return exp
        if r.status_code == 409 and body.get("error") == "stream_moved":
            self.rewinds += 1
            return seq
        if r.status_code in (408, 429):
            self.retries += 1
            time.sleep(float(r.headers.get("Retry-After", "0.5")))
            return seq
        raise RuntimeError(f"seq {seq}: {r.status_code} {r.text[:300]}")
