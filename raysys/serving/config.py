"""Settings of the online tracking service (``raysys serve``, ``serve/app.py``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

__all__ = ["ServeConfig", "is_loopback"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """Where the service listens, its limits, its replicas; ``track``: TrackConfig fields
    (e.g. ``{"clip_frames": 4}``) over the defaults."""

    model: str = ""  # a ViewSAM checkpoint folder (RUN/final)
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # bearer token; required when host is not loopback
    allow_open: bool = False  # serve a non-loopback host without a token (not advised)
    track: dict = field(default_factory=dict)
    # replicas and load
    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 1.0  # autoscaling target per replica
    replica_cpus: float = 0.5  # CPUs per tracker replica (fractions fit several on a core)
    ingress_cpus: float = 0.25
    torch_threads: int = 1
    max_ongoing_requests: int = 4  # per tracker replica
    max_queued_requests: int = 16  # beyond it: 429 with Retry-After
    request_timeout_s: float = 60.0  # a frame set taking longer: 408 (re-send the seq)
    upscale_delay_s: float = 2.0
    downscale_delay_s: float = 10.0
    # the per-clip encoder, batched across a replica's streams (@serve.batch)
    encode_batch_size: int = 4  # clips per encoder pass at most (1: no batching;
    #   bounded by max_ongoing_requests, the requests a replica takes at once)
    encode_batch_wait_s: float = 0.005  # how long a clip waits for others to join
    # streams
    ttl_s: float = 600.0  # idle streams expire (their id then answers 410)
    max_streams: int = 64  # live streams at once (beyond: 429)
    answers_kept: int = 32  # per stream, answers kept for idempotent re-sends
    pipeline_depth: int = 4  # a pipelined seq up to this many ahead waits its turn at the
    pipeline_wait_s: float = 5.0  # ingress, at most this long (then the replica judges)
    # request limits
    max_views: int = 8
    max_expression_chars: int = 256
    max_image_bytes: int = 4 << 20
    max_pixels: int = 1920 * 1080
    max_request_bytes: int = 40 << 20

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < max(1, self.min_replicas):
            raise ValueError(f"replicas: need 0 <= min ({self.min_replicas}) <= max "
                             f"({self.max_replicas}) and max >= 1")
        if not self.model:
            raise ValueError("model: pass a ViewSAM checkpoint folder (e.g. RUN/final)")
        if self.token is None and not self.allow_open and not is_loopback(self.host):
            raise ValueError(f"host {self.host!r} is not loopback: pass a token "
                             "(--token-file F); without it anyone reaching the port could "
                             "use the service")
        if self.encode_batch_size < 1 or self.encode_batch_wait_s < 0:
            raise ValueError(f"encode_batch_size must be >= 1 and encode_batch_wait_s >= 0, "
                             f"got {self.encode_batch_size}, {self.encode_batch_wait_s}")
        if self.pipeline_depth < 1 or self.pipeline_wait_s < 0:
            raise ValueError(f"pipeline_depth must be >= 1 and pipeline_wait_s >= 0, got "
                             f"{self.pipeline_depth}, {self.pipeline_wait_s}")
        for name in ("ttl_s", "request_timeout_s", "replica_cpus", "ingress_cpus"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
