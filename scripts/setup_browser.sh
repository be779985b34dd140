#!/usr/bin/env bash
# Debian's chromium for the serving viewer's headless-browser test (tests/serving), run by
# `make test` (not by `make demo`). A machine without a usable apt-get goes on without it:
# that test then skips, unless RAYSYS_REQUIRE_BROWSER is set (CI sets it, in .ci/run).
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
  echo "[setup] installing chromium (apt-get) for the viewer's browser test"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends chromium >/dev/null; } \
    || echo "[setup] chromium could not be installed; the browser test will not run"
else
  echo "[setup] no /usr/bin/chromium and no apt-get as root: the browser test will not run"
fi
