#!/usr/bin/env bash
# Installs the real Claude Code and Codex CLIs into .tools/ (gitignored) for the end-to-end wire
# tests in tests/e2e/. Idempotent: does nothing when both binaries are already there.
# Versions are pinned to the ones the fixtures in ../shared/fixtures were captured with.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS="$PWD/.tools"
CLAUDE_VERSION="${LYNKR_CLAUDE_VERSION:-2.1.328}"
CODEX_VERSION="${LYNKR_CODEX_VERSION:-0.169.0}"
CLAUDE_PKG="@anthropic-ai/claude-code@$CLAUDE_VERSION"
CODEX_PKG="@openai/codex@$CODEX_VERSION"
if ! command -v npm >/dev/null 2>&1; then
  echo "10-clis: npm not found; the real-CLI tests will skip" >&2
  exit 0
fi
mkdir -p "$TOOLS"
# Installed and at the pinned version (the fixtures were captured with these).
have() { [ -x "$TOOLS/node_modules/.bin/$1" ] && "$TOOLS/node_modules/.bin/$1" --version 2>/dev/null | grep -q "$2"; }
want=()
have claude "$CLAUDE_VERSION" || want+=("$CLAUDE_PKG")
have codex "$CODEX_VERSION" || want+=("$CODEX_PKG")
if [ ${#want[@]} -eq 0 ]; then
  echo "10-clis: claude $("$TOOLS/node_modules/.bin/claude" --version 2>/dev/null | head -1), codex $("$TOOLS/node_modules/.bin/codex" --version 2>/dev/null | head -1) already installed"
  exit 0
fi
[ -f "$TOOLS/package.json" ] || echo '{"name":"lynkr-tools","private":true}' > "$TOOLS/package.json"
# A failed install must not fail CI: the tests skip with a reason when a CLI is missing.
npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error "${want[@]}" || \
  echo "10-clis: npm install failed; the real-CLI tests will skip" >&2
for b in claude codex; do
  if [ -x "$TOOLS/node_modules/.bin/$b" ]; then echo "10-clis: $b $("$TOOLS/node_modules/.bin/$b" --version 2>/dev/null | head -1)"; fi
done
