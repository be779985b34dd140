"""ruff (configured in pyproject.toml) runs as part of the tests."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff not installed: run `bash scripts/setup.sh` (installs the dev extra)")
    targets = [p for p in ("raysys", "jobs", "serve", "tune", "tests", "benchmarks")
               if (ROOT / p).exists()]
    r = subprocess.run([exe, "check", *targets], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"ruff found problems:\n{r.stdout}{r.stderr}"


def test_no_cuda_calls_in_library():
    """The library never picks the device (STYLE.md): no `.cuda(` in raysys/."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "raysys").rglob("*.py")
                 if ".cuda(" in p.read_text(encoding="utf-8")]
    assert not offenders, f".cuda() calls in the library: {offenders}"
