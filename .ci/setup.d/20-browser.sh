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
. "$(dirname "$0")/../debian.bash"
debian_install 20-browser "the dashboard browser test fails under CI=true without it" chromium fonts-dejavu-core || exit 0
chromium --version || true
