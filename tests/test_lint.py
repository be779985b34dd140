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


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def _too_long(path: Path) -> list[str]:
    import ast

    text = path.read_text(encoding="utf-8")
    rel = str(path.relative_to(ROOT))
    out = [f"{rel}: {len(text.splitlines())} lines"] \
        if len(text.splitlines()) > MAX_MODULE_LINES else []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                out.append(f"{rel}:{node.lineno} {node.name}(): {n} lines")
    return out


def test_modules_and_functions_stay_small():
    """No module in raysys/ over 400 lines and no function over 80 (issue #18): split it."""
    offenders = [o for p in sorted((ROOT / "raysys").rglob("*.py")) for o in _too_long(p)]
    assert not offenders, "too long:\n" + "\n".join(offenders)


def test_the_size_check_can_fail(tmp_path, monkeypatch):
    long_fn = "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    (tmp_path / "m.py").write_text(long_fn)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _too_long(tmp_path / "m.py") == [f"m.py:1 f(): {MAX_FUNCTION_LINES + 1} lines"]
