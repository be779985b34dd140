"""Layers point one way: the import contract in pyproject.toml holds, and it catches an
upward import (so the check itself can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_layer_contract_holds():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def test_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "raysys", tmp_path / "raysys",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    victim = tmp_path / "raysys" / "viewsam" / "cgct.py"
    # a function-level import hides nothing: the linter reads every import statement
    victim.write_text(victim.read_text() + "\n\ndef _upward():\n"
                      "    from raysys.training.trainer import run_training  # noqa: F401\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "raysys.viewsam.cgct -> raysys.training.trainer" in res.stdout
