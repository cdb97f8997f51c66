#!/usr/bin/env bash
# Debian's redis-server for the shared-state tests (tests/test_shared_state.py and the fleet test):
# they start it themselves on a free port (tests/helpers/redis_server.py) and stop it after.
# Idempotent: does nothing when redis-server is already installed. Under CI=true the tests fail
# (not skip) without it.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
  echo "30-redis: $( (redis-server --version || /usr/bin/redis-server --version) 2>/dev/null | head -1) already installed"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "30-redis: not root; cannot install redis-server (the shared-state tests need it)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || echo "30-redis: apt-get update failed; trying with the cached lists" >&2
apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
  || { echo "30-redis: redis-server install failed (the shared-state tests will fail under CI=true)" >&2; exit 0; }
# Debian's package starts a system service on 6379; the tests start their own on free ports.
redis-server --version
