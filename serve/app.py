"""Ray Serve entry point of online tracking (the app of ``raysys serve``).

    serve run serve.app:build_app model=RUN/final [port=8000 max_replicas=4 ...]
    serve deploy serve/config.yaml

``args``: :class:`raysys.serving.config.ServeConfig` fields as ``key=value`` strings
(``token_file=F`` for the bearer token, ``track='{"clip_frames": 4}'``).
"""

from raysys.serving.app import build_app as _build_app


def build_app(args: dict):
    return _build_app(args)
