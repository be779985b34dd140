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
