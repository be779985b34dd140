#!/usr/bin/env bash
# Builds the project's virtual environment from nothing (Python 3.11 + pip only).
# Idempotent: a second run with unchanged pins only re-checks the stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RAYSYS_VENV:-.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
STAMP="$VENV/.raysys-setup-stamp"
want="$(cat pyproject.toml requirements/constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "[setup] $VENV is up to date"
  exit 0
fi
echo "[setup] creating $VENV with $($PY --version)"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -c requirements/constraints.txt)
# pip's output minus the noise of this machine's unused local index folders
pip_install() {
  "${PIP[@]}" "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
# torch first, pinned with torchvision (see ../shared/ENVIRONMENT.md): a CUDA build that runs on CPU.
echo "[setup] installing torch + torchvision (large; from local disk where available)"
pip_install -q torch==2.14.1 torchvision==0.29.1
pip_install -q setuptools wheel
# sam2 is an sdist whose build wants torch: build it against the torch above, without CUDA.
echo "[setup] installing sam2 (built against the installed torch)"
SAM2_BUILD_CUDA=0 pip_install -q --no-build-isolation sam2==1.1.0
echo "[setup] installing raysys and its dependencies"
pip_install -q -e ".[dev]"
echo "$want" > "$STAMP"
echo "[setup] done: $VENV"
