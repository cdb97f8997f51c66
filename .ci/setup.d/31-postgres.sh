#!/usr/bin/env bash
# Debian's PostgreSQL for the DuckLake telemetry tests (tests/test_lake.py) and the fleet test: each
# test starts its own server (initdb in a temp dir, a free port on 127.0.0.1, as the `postgres`
# user: tests/helpers/postgres_server.py) and stops it after. Nothing is started here.
# Idempotent: does nothing when initdb is already installed.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "postgresql already installed: $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
  exit 0
fi
. "$(dirname "$0")/../debian.bash"
debian_install 31-postgres "the lake tests fail under CI=true without it" postgresql || exit 0
ls -d /usr/lib/postgresql/*/bin
