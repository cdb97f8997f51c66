#!/usr/bin/env bash
# Installs the real Claude Code and Codex CLIs into .tools/ (gitignored) for the end-to-end wire
# tests in tests/e2e/. Idempotent: does nothing when both binaries are already there.
# Versions follow the fixtures in ../shared/fixtures (Claude Code 2.1.x, Codex 0.169).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS="$PWD/.tools"
CLAUDE_PKG="${LYNKR_CLAUDE_PKG:-@anthropic-ai/claude-code@2}"
CODEX_PKG="${LYNKR_CODEX_PKG:-@openai/codex@0.169}"
if ! command -v npm >/dev/null 2>&1; then
  echo "10-clis: npm not found; the real-CLI tests will skip" >&2
  exit 0
fi
mkdir -p "$TOOLS"
have() { [ -x "$TOOLS/node_modules/.bin/$1" ] && "$TOOLS/node_modules/.bin/$1" --version >/dev/null 2>&1; }
want=()
have claude || want+=("$CLAUDE_PKG")
have codex || want+=("$CODEX_PKG")
if [ ${#want[@]} -eq 0 ]; then
  echo "10-clis: claude $("$TOOLS/node_modules/.bin/claude" --version 2>/dev/null | head -1), codex $("$TOOLS/node_modules/.bin/codex" --version 2>/dev/null | head -1) already installed"
  exit 0
fi
[ -f "$TOOLS/package.json" ] || echo '{"name":"lynkr-tools","private":true}' > "$TOOLS/package.json"
# A failed install must not fail CI: the tests skip with a reason when a CLI is missing.
npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error "${want[@]}" || \
  echo "10-clis: npm install failed; the real-CLI tests will skip" >&2
for b in claude codex; do
  if have "$b"; then echo "10-clis: $b $("$TOOLS/node_modules/.bin/$b" --version 2>/dev/null | head -1)"; fi
done
