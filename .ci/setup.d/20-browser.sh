#!/usr/bin/env bash
# Debian's Chromium for the dashboard browser test (tests/test_dashboard_browser.py), driven by
# the Python `playwright` package from the test extras with executable_path=/usr/bin/chromium.
# Never `playwright install`: browser builds cannot be downloaded here, Debian's can.
# Idempotent: does nothing when chromium is already installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(chromium --version 2>/dev/null || true)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "20-browser: not root; skipping the chromium install (the browser test will be skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || echo "20-browser: apt-get update failed; trying with the cached lists" >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null \
  || { echo "20-browser: chromium install failed (the browser test will be skipped)" >&2; exit 0; }
chromium --version || true
