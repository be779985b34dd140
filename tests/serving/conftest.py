"""The tracking service on a local Ray: one per test module (Ray and Serve start once).

The model is the real ViewSAM (embedded tiny SAM2 at 64 px, MiniLM) with random weights,
SAM2 forced to call every decoded object present so that tracks open and get ids, saved
as a checkpoint the replicas load like any ``RUN/final``; the scene is a generated one.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

OPEN = dict(refer_threshold=0.0, objectness_threshold=0.0, min_refer=0.0)
TOKEN = "s3cret-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    url: str
    cfg: object  # ServeConfig
    checkpoint: Path
    data: Path  # generated dataset root (In-domain test split)
    token: str


def write_tiny_checkpoint(path: Path, always_present) -> Path:
    import torch

    from raysys.config import to_dict
    from raysys.training.config import StageConfig, quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text
    from raysys.viewsam.checkpoint import model_state, write_checkpoint

    torch.manual_seed(0)
    cfg = quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                       max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),))
    model = always_present(build_model(cfg, sam2_yaml_text(None, 64)).eval())
    write_checkpoint(path, {"model": model_state(model), "config": to_dict(cfg),
                            "build_spec": model.build_spec, "epoch": 1})
    return path


def _drop_encode_queue() -> None:
    from raysys.serving.replica import TrackerReplica

    TrackerReplica._encode.set_max_batch_size.__self__._queue = None


@pytest.fixture
def fresh_encode_queue():
    """``fresh_encode_queue()`` drops ``TrackerReplica._encode``'s batch queue:
    ``@serve.batch`` keeps one per method (a replica process has one instance and one loop),
    bound to the event loop it was first used in; a test driving a replica outside Serve in
    a new loop needs a new one."""
    return _drop_encode_queue


def generate_scene(root: Path, frames: int = 10) -> Path:
    from raysys.synth import SynthConfig, generate

    generate(SynthConfig(seed=3, scenes=1, views=2, frames=frames, width=160, height=96,
                         people=3, cars=0, bicycles=0, expressions=1, splits=("test",),
                         domains=("In-domain",)), root)
    return root


@pytest.fixture(scope="module")
def service(tmp_path_factory, always_present):
    ray = pytest.importorskip("ray")
    from raysys.serving import app
    from raysys.serving.config import ServeConfig

    base = tmp_path_factory.mktemp("serve")
    ck = write_tiny_checkpoint(base / "ck", always_present)
    data = generate_scene(base / "data")
    port = free_port()
    cfg = ServeConfig(model=str(ck), port=port, token=TOKEN, track=dict(clip_frames=4, **OPEN),
                      min_replicas=1, max_replicas=1, replica_cpus=0.5, ingress_cpus=0.25,
                      request_timeout_s=90.0, max_streams=8,
                      encode_batch_wait_s=0.25)  # streams sent in lockstep share a batch
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # as init_ray and .ci/run
    for attempt in (1, 2, 3, 4):  # the raylet's 30 s start window can pass on a loaded machine
        try:
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt == 4:
                raise
    try:
        app.start(cfg)
        yield Service(f"http://127.0.0.1:{port}", cfg, ck, data, TOKEN)
    finally:
        from ray import serve

        app.stop()
        serve.shutdown()
        ray.shutdown()
