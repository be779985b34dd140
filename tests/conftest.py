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
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
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
