"""``raysys serve``: online cross-view referring tracking as an autoscaled Ray Serve
service (HTTP API: ``docs/serve.md``). Starts Serve on a local Ray (or ``--address``) and
blocks until Ctrl-C, then deletes the app and its streams.

Examples::

    raysys serve --model RUN/final                          # http://127.0.0.1:8000/
    raysys serve --model RUN/final --host 0.0.0.0 --token-file token.txt --max-replicas 4
    curl -s -X POST localhost:8000/v1/streams -H 'Content-Type: application/json' \\
        -d '{"expression": "a man in a red coat", "views": 3}'
"""

from __future__ import annotations

import argparse
from pathlib import Path

from raysys.commands.options import add_address, add_config, add_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, required=True)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs --token-file)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument("--token-file", type=Path, metavar="F",
                   help="file whose first line is the bearer token clients must send")
    p.add_argument("--min-replicas", type=int, default=1, help="tracker replicas, at least "
                   "(default 1)")
    p.add_argument("--max-replicas", type=int, default=2, help="tracker replicas, at most "
                   "(default 2)")
    p.add_argument("--replica-cpus", type=float, default=0.5,
                   help="CPUs per tracker replica, fractions ok (default 0.5)")
    p.add_argument("--ttl", type=float, default=600.0,
                   help="seconds an idle stream lives (then its id answers 410; default 600)")
    add_config(p, "TrackConfig")
    add_address(p)


def build_serve_config(args: argparse.Namespace):
    from raysys.commands.track import build_track_config
    from raysys.serving.config import ServeConfig

    track = build_track_config(argparse.Namespace(config=args.config, clip_frames=None))
    from dataclasses import asdict

    token = None
    if args.token_file is not None:
        token = args.token_file.read_text().splitlines()[0].strip()
    return ServeConfig(model=str(args.model), host=args.host, port=args.port, token=token,
                       min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                       replica_cpus=args.replica_cpus, ttl_s=args.ttl,
                       track={k: v for k, v in asdict(track).items() if k != "keep_masks"})


def serve_forever(cfg) -> int:
    """Start the app (Ray already up) and block until Ctrl-C."""
    import time

    from raysys.serving import app

    app.start(cfg)
    print(f"serving {cfg.model} on http://{cfg.host}:{cfg.port}/ (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    from raysys.runtime import init_ray

    cfg = build_serve_config(args)
    init_ray(args.address)
    return serve_forever(cfg)
