#!/usr/bin/env bash
# Debian's HAProxy for the fleet test (tests/test_fleet.py): three `lynkr run` replicas behind a
# round-robin balancer, as a team runs them (docs/scale-out.md). The test starts its own haproxy
# on a free port with a config it writes (tests/helpers/haproxy.py); no service is enabled here.
# Idempotent: does nothing when haproxy is already installed.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
  echo "32-haproxy: $( (haproxy -v 2>/dev/null || /usr/sbin/haproxy -v) | head -1)"
  exit 0
fi
. "$(dirname "$0")/../debian.bash"
debian_install 32-haproxy "tests/test_fleet.py fails under CI=true without it" haproxy || exit 0
/usr/sbin/haproxy -v | head -1
