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
if [ "$(id -u)" != 0 ]; then
  echo "32-haproxy: not root; cannot install haproxy (tests/test_fleet.py needs it)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || echo "32-haproxy: apt-get update failed; trying with the cached lists" >&2
apt-get install -y -qq --no-install-recommends haproxy >/dev/null \
  || { echo "32-haproxy: haproxy install failed (tests/test_fleet.py will fail under CI=true)" >&2; exit 0; }
/usr/sbin/haproxy -v | head -1
