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
. "$(dirname "$0")/../debian.bash"
debian_install 30-redis "the shared-state tests fail under CI=true without it" redis-server || exit 0
# Debian's package starts a system service on 6379; the tests start their own on free ports.
redis-server --version
