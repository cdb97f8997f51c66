#!/usr/bin/env bash
# An S3 endpoint for the `telemetry.lake` test with an s3:// data_path (tests/test_lake.py): moto's
# server (PyPI), in its own venv .venv-s3/ (gitignored) so its dependencies (flask, boto3, pydantic
# pins) never meet Lynkr's. The test starts it on a free port and stops it after.
# Idempotent: does nothing when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="$PWD/.venv-s3"
MOTO_VERSION="5.2.6"
if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c "import sys, importlib.metadata as m; sys.exit(m.version('moto') != '$MOTO_VERSION')" 2>/dev/null; then
  echo "moto $MOTO_VERSION already installed in .venv-s3"
  exit 0
fi
PY="$(command -v python3 || command -v python)"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
  || { echo "32-s3: moto install failed (the s3:// lake test fails under CI=true)" >&2; exit 0; }
echo "32-s3: $("$VENV/bin/moto_server" --version 2>/dev/null || echo moto $MOTO_VERSION)"
