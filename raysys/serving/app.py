"""The Ray Serve application of online tracking: an ingress and autoscaled tracker replicas.

:func:`build_app` makes the application that ``raysys serve``, ``serve run
serve.app:build_app model=RUN/final``, ``serve deploy serve/config.yaml`` and
``jobs/serve.py`` run: the :class:`~raysys.serving.ingress.Ingress` (HTTP) and the
``tracker`` deployment of :class:`~raysys.serving.replica.TrackerReplica`, autoscaled
between ``min_replicas`` and ``max_replicas`` on ongoing requests, requests routed by Ray
Serve's consistent-hash router on the stream id, queue bounded (beyond: 429).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from raysys.serving.config import ServeConfig

__all__ = ["build_app", "config_from_args", "start", "APP_NAME", "ROUTER"]

APP_NAME = "raysys"
ROUTER = "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter"


def config_from_args(args: dict | ServeConfig) -> ServeConfig:
    """A :class:`ServeConfig` from ``serve run``'s ``key=value`` strings (or a config).

    ``token_file=F`` reads the token from a file (first line); ``track`` may be JSON.
    """
    if isinstance(args, ServeConfig):
        return args
    import json

    args = dict(args)
    if "token_file" in args:
        args["token"] = Path(args.pop("token_file")).read_text().splitlines()[0].strip()
    hints = typing.get_type_hints(ServeConfig)
    out = {}
    for k, v in args.items():
        if k not in hints:
            raise ValueError(f"unknown setting {k!r}; settings: {', '.join(sorted(hints))}")
        if isinstance(v, str):
            t = hints[k]
            if t is bool:
                v = v.lower() in ("1", "true", "yes")
            elif t is int:
                v = int(v)
            elif t is float:
                v = float(v)
            elif k == "track":
                v = json.loads(v)
        out[k] = v
    return ServeConfig(**out)


def build_app(args: dict | ServeConfig):
    """The application (not yet running) for ``args`` (see :func:`config_from_args`)."""
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    from raysys.serving.ingress import Ingress
    from raysys.serving.replica import TrackerReplica

    cfg = config_from_args(args)
    cfg = dataclasses.replace(cfg, model=str(Path(cfg.model).resolve()))
    tracker = serve.deployment(
        TrackerReplica, name="tracker",
        ray_actor_options={"num_cpus": cfg.replica_cpus},
        max_ongoing_requests=cfg.max_ongoing_requests,
        max_queued_requests=cfg.max_queued_requests,
        autoscaling_config={
            "min_replicas": cfg.min_replicas, "max_replicas": cfg.max_replicas,
            "initial_replicas": max(1, cfg.min_replicas),
            "target_ongoing_requests": cfg.target_ongoing_requests,
            "upscale_delay_s": cfg.upscale_delay_s,
            "downscale_delay_s": cfg.downscale_delay_s,
            "metrics_interval_s": 1.0, "look_back_period_s": 4.0},
        request_router_config=RequestRouterConfig(
            request_router_class=ROUTER,
            request_router_kwargs={"num_fallback_replicas": 0}),
        graceful_shutdown_timeout_s=5.0,
    ).bind(cfg)
    ingress = serve.deployment(Ingress, name="ingress", num_replicas=1,
                               ray_actor_options={"num_cpus": cfg.ingress_cpus},
                               max_ongoing_requests=1024)
    return ingress.bind(tracker, cfg)


def start(cfg: ServeConfig, blocking: bool = False) -> None:
    """Start Serve's HTTP proxy on ``cfg.host:cfg.port`` and run the app (Ray must be up)."""
    from ray import serve

    from raysys.serving.store import get_store

    serve.start(http_options={"host": cfg.host, "port": cfg.port,
                              "request_timeout_s": cfg.request_timeout_s + 5})
    get_store(cfg)  # before the replicas look it up
    serve.run(build_app(cfg), name=APP_NAME, route_prefix="/", blocking=blocking)


def stop() -> None:
    """Delete the app and the store of its streams."""
    import ray
    from ray import serve

    from raysys.serving.store import NAMESPACE, STORE_NAME

    serve.delete(APP_NAME)
    try:
        ray.kill(ray.get_actor(STORE_NAME, namespace=NAMESPACE))
    except ValueError:
        pass
