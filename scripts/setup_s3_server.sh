#!/usr/bin/env bash
# The local S3-compatible server the multi-node tests start as a real process (moto's S3
# server, pinned in requirements/s3-server.txt), in its own environment .venv-s3: its
# botocore pins python-dateutil<3, which the project's environment does not allow. Run by
# `make test`. Idempotent: a second run with unchanged pins only re-checks the stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RAYSYS_S3_VENV:-.venv-s3}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
STAMP="$VENV/.raysys-setup-stamp"
want="$(cat requirements/s3-server.txt scripts/setup_s3_server.sh | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
echo "[setup] creating $VENV (moto's S3 server, for the multi-node tests)"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements/s3-server.txt \
  2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
test "${PIPESTATUS[0]}" -eq 0
echo "$want" > "$STAMP"
