"""A small Python client of the tracking service (used by the tests and the benchmark).

:meth:`StreamClient.run` sends a stream's frame sets in order and follows the protocol's
recovery rules: a 409 with ``expected_seq`` (the stream was restored on another replica
from its last clip-boundary checkpoint) rewinds to that seq and re-sends from there (the
client keeps the frame sets it sent since; re-sent seqs are idempotent), and a 429 or 408
is retried after ``Retry-After``.
"""

from __future__ import annotations

import time
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

    def create(self, expression: str, views: int) -> str:
        r = self.session.post(f"{self.base}/v1/streams", timeout=self.timeout,
                              json={"expression": expression, "views": views})
        r.raise_for_status()
        return r.json()["stream_id"]

    def send(self, sid: str, seq: int, images: Sequence[bytes]):
        return self.session.post(f"{self.base}/v1/streams/{sid}/frames",
                                 files=multipart_frames(seq, images), timeout=self.timeout)

    def run(self, sid: str, frames: Sequence[Sequence[bytes]],
            on_answer: Callable[[int, float], None] | None = None,
            before: Callable[[int], None] | None = None, delete: bool = True) -> list[dict]:
        """Send ``frames`` (per frame set, bytes per view) as seq 0, 1, ...; returns every
        track row answered (each frame set's once), the DELETE's flush included.
        ``on_answer(seq, seconds)`` per accepted frame set; ``before(seq)`` before each
        send (a test's hook)."""
        tracks: dict[int, list[dict]] = {}
        seq = 0
        while seq < len(frames):
            if before is not None:
                before(seq)
            t0 = time.perf_counter()
            r = self.send(sid, seq, frames[seq])
            dt = time.perf_counter() - t0
            if r.status_code == 200:
                for t in r.json()["tracks"]:
                    tracks.setdefault(t["frame"], []).append(t)
                if on_answer is not None:
                    on_answer(seq, dt)
                seq += 1
            elif r.status_code == 409 and "expected_seq" in r.json():
                self.rewinds += 1
                exp = r.json()["expected_seq"]
                for f in [f for f in tracks if f >= exp]:  # answered again on re-send
                    del tracks[f]
                seq = exp
            elif r.status_code == 409 and r.json().get("error") == "stream_moved":
                self.rewinds += 1
            elif r.status_code in (408, 429):
                self.retries += 1
                time.sleep(float(r.headers.get("Retry-After", "0.5")))
            else:
                raise RuntimeError(f"seq {seq}: {r.status_code} {r.text[:300]}")
        if delete:
            r = self.session.delete(f"{self.base}/v1/streams/{sid}", timeout=self.timeout)
            r.raise_for_status()
            for t in r.json()["tracks"]:
                tracks.setdefault(t["frame"], []).append(t)
        return [t for f in sorted(tracks) for t in tracks[f]]
