"""Shared fixtures: small generated datasets made once per test session.

The tree mirrors the package (``tests/<package>/test_*.py``). ``make test`` runs everything
(CI); ``make test-fast`` leaves out the tests marked ``slow``. Every test has a default
timeout (``timeout`` in pyproject.toml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from raysys.io.dataset import DatasetLayout

# a tiny In-domain benchmark: 1 scene x 3 views x 16 frames at 320x180, 4 people (seed 5)
TINY = dict(seed=5, scenes=1, frames=16, width=320, height=180, people=4,
            domains=("In-domain",))

_LABEL = """
import sys, ray
from pathlib import Path
from raysys.synth import SynthConfig, generate
from raysys.io.dataset import DatasetLayout
from raysys.labeling.pipeline import run_labeling
root, out = Path(sys.argv[1]), Path(sys.argv[2])
generate(SynthConfig(**{tiny}, splits=("train",)), root)
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
run_labeling(DatasetLayout(root, "In-domain", "train"), out, progress=False)
""".replace("{tiny}", repr(TINY))


@pytest.fixture(scope="session")
def _tiny_test_source(tmp_path_factory) -> Path:
    from raysys.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("tiny_test_source")
    generate(SynthConfig(**TINY, splits=("test",)), root)
    return root


@pytest.fixture(scope="module")
def tiny_test_split(_tiny_test_source, tmp_path_factory) -> DatasetLayout:
    """The tiny benchmark's In-domain test split: generated once per session (in this
    process, no Ray), copied for each test module. A module may install the GT guard on its
    copy (an audit hook stays for the process) without blocking another module's GT reads."""
    root = tmp_path_factory.mktemp("tiny_test") / "data"
    shutil.copytree(_tiny_test_source, root)
    return DatasetLayout(root, "In-domain", "test")


@pytest.fixture(scope="session")
def labeled(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, Stage 1 labels) of the tiny benchmark's train split, made once per
    session in a subprocess (~25 s: synth + Stage 1 on a local Ray of its own)."""
    base = tmp_path_factory.mktemp("tiny_labeled")
    data, labels = base / "data", base / "labels"
    r = subprocess.run([sys.executable, "-c", _LABEL, str(data), str(labels)],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return data, labels


@pytest.fixture(scope="session")
def micro_sam2(tmp_path_factory) -> Path:
    """The embedded tiny SAM2 at image size 128 instead of 256: same parameters, ~4x less
    compute, for the tests that only need the model to run."""
    from omegaconf import OmegaConf

    from raysys.viewsam.base import resolve_sam2_config

    cfg = OmegaConf.load(resolve_sam2_config(None))
    cfg.model.image_size = 128
    layer = cfg.model.memory_attention.layer
    layer.self_attention.feat_sizes = layer.cross_attention.feat_sizes = [8, 8]
    path = tmp_path_factory.mktemp("sam2") / "micro.yaml"
    OmegaConf.save(cfg, path)
    return path


def _always_present(model):
    """Random heads: make SAM2 call every decoded object present, so tracks open and live."""
    import torch

    with torch.no_grad():
        head = model.sam2.sam_mask_decoder.pred_obj_score_head
        last = head.layers[-1] if hasattr(head, "layers") else head
        last.weight.zero_()
        last.bias.fill_(5.0)
    return model


@pytest.fixture(scope="session")
def always_present():
    """``always_present(model)``: SAM2's object-score head set to say "present" always."""
    return _always_present


@pytest.fixture(scope="module")
def tiny_viewsam(always_present):
    """A random-init ViewSAM at 64 px (clips of 2), objectness always on: the model of the
    tracker's and the service's unit tests (built once per module, seed 0)."""
    import torch

    from raysys.training.config import StageConfig, quick_config
    from raysys.training.model import build_model
    from raysys.viewsam.base import sam2_yaml_text

    torch.manual_seed(0)
    cfg = quick_config(clip_frames=2, image_size=64, sam2_image_size=64, max_objects=4,
                       max_samples=4, stages=(StageConfig("all", ("cgct",), 1, 1e-3),))
    return always_present(build_model(cfg, sam2_yaml_text(None, 64)).eval())


def _blank_views(layout: DatasetLayout, scene: str, views, frames: int = 4,
                 size: tuple[int, int] = (24, 32)) -> DatasetLayout:
    import numpy as np
    from PIL import Image

    for v in views:
        d = layout.view_dir(scene, v)
        d.mkdir(parents=True)
        for f in range(1, frames + 1):
            Image.fromarray(np.zeros((*size, 3), np.uint8)).save(d / f"{f:06d}.jpg")
    return layout


@pytest.fixture(scope="session")
def blank_views():
    """``blank_views(layout, scene, views)``: black 32 x 24 JPEG frames 1-4 per view."""
    return _blank_views


class S3Server:
    """A local S3-compatible server (moto's, ``.venv-s3`` from ``make s3-server``) started
    as a real process on loopback; the ``AWS_*`` variables point this process (and the Ray
    nodes it starts) at it."""

    MOTO = Path(__file__).resolve().parents[1] / ".venv-s3" / "bin" / "moto_server"

    def __init__(self, log: Path):
        import socket
        import time

        import requests

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen([str(self.MOTO), "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url, timeout=2).status_code < 500:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError(f"the S3 server did not start: see {log}")
            time.sleep(0.2)
        self.env = {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}

    def bucket(self, name: str, versioned: bool = False) -> str:
        """Create a bucket (versioned: every PUT of a key kept); its ``s3://`` URI."""
        import requests

        requests.put(f"{self.url}/{name}", timeout=10).raise_for_status()
        if versioned:
            requests.put(f"{self.url}/{name}?versioning", timeout=10, data=(
                '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                "<Status>Enabled</Status></VersioningConfiguration>")).raise_for_status()
        return f"s3://{name}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The session's local S3 server (:class:`S3Server`). Skips without ``.venv-s3``, unless
    ``RAYSYS_REQUIRE_S3`` is set (CI sets it: then a missing server is a failure)."""
    if not S3Server.MOTO.exists():
        if os.environ.get("RAYSYS_REQUIRE_S3"):
            pytest.fail(f"{S3Server.MOTO} is missing: run `make s3-server`")
        pytest.skip("no local S3 server: run `make s3-server` (scripts/setup_s3_server.sh)")
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    old = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    yield server
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
