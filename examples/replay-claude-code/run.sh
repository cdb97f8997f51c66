#!/usr/bin/env bash
# Replay the recorded Claude Code session (../shared/fixtures/claude-code/fix-negative-stock) with
# the real Claude Code CLI, through Lynkr, against the demo provider: no key, no network.
#
#   examples/replay-claude-code/run.sh [FIXTURE_DIR]
#
# Claude Code runs the recorded tool loop (Bash → Read → Edit → Bash → the final answer) on a copy
# of inventory-app/ in a temporary folder; the script then shows the edit Claude Code made and
# `lynkr report savings` for the session. CLAUDE (default: claude on PATH, else .tools/), LYNKR
# (default: lynkr) and PORT (default: a free one) can be set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
fixture="${1:-${LYNKR_FIXTURES:-$root/../shared/fixtures}/claude-code/fix-negative-stock}"
claude="${CLAUDE:-$(command -v claude || echo "$root/.tools/node_modules/.bin/claude")}"
lynkr="${LYNKR:-lynkr}"
python="${PYTHON:-python3}"
[ -f "$fixture/upstream_script.json" ] || { echo "✗ no recorded session at $fixture" >&2; exit 1; }
[ -x "$claude" ] || { echo "✗ Claude Code CLI not found: set CLAUDE or run .ci/setup.d/10-clis.sh" >&2; exit 1; }

work="$(mktemp -d)"
cp -r "$here/inventory-app" "$work/"
# The session was recorded in /home/dev/inventory-app: its steps are replayed on the copy.
sed -e "s#/home/dev/inventory-app#$work/inventory-app#g" \
    -e "s#/opt/python/lib/python3.11/json#$work/inventory-app/inventory#g" \
    "$fixture/upstream_script.json" > "$work/script.json"
prompt="$("$python" -c 'import json,sys; m=json.load(open(sys.argv[1]))["body"]["messages"][0]; print([b["text"] for b in m["content"] if not b["text"].startswith("<")][-1])' "$fixture/req_000.json")"
port="${PORT:-$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

export LYNKR_DEMO_SCRIPT="$work/script.json" LYNKR_STATE_DIR="$work/.lynkr" LYNKR_TELEMETRY="$work/telemetry.duckdb"
$lynkr run "$here/pipeline.yaml" --port "$port" --no-reload > "$work/lynkr.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  "$python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health/ready', timeout=1)" 2>/dev/null && break
  kill -0 $server 2>/dev/null || { cat "$work/lynkr.log" >&2; exit 1; }
  sleep 0.1
done

echo "── Claude Code: $prompt"
(cd "$work/inventory-app" && ANTHROPIC_BASE_URL="http://127.0.0.1:$port" ANTHROPIC_API_KEY="${ANTHROPIC_API_KEY:-demo}" \
   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 "$claude" -p "$prompt" --allowedTools "Bash Read Edit" --output-format text)
echo "── the edit it made"
diff -u "$here/inventory-app/inventory/store.py" "$work/inventory-app/inventory/store.py" || true
kill $server; wait $server 2>/dev/null || true
trap - EXIT
echo "── what Lynkr logged"
grep " req_" "$work/lynkr.log" || true
echo "── lynkr report savings"
$lynkr report savings --db "$work/telemetry.duckdb"
echo "(files kept in $work)"
