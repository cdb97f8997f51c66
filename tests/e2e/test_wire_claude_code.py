"""The real Claude Code CLI through the proxy: `claude -p` runs the fix-negative-stock session's
tool loop (Bash → Read → Edit → Bash → final text) against a scripted upstream that speaks
(a) Anthropic Messages and (b) OpenAI chat completions, and the edit lands in the working folder."""
import pytest

from tests.conftest import start_app
from tests.helpers.wire_cli import FIXTURE, FIXTURE_ROOT, claude_env, cli, make_inventory_app, run
from tests.helpers.wire_upstreams import OpenAIUpstream, ScriptedAnthropic, load_script

CLAUDE = cli("claude")
pytestmark = pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (run .ci/setup.d/10-clis.sh)")

PIPES = {
    "anthropic": """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
""",
    "openai": """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: openai, base_url: "%s/v1", api_key: test}
stages:
  - {id: call, uses: provider_call, with: {to: "up:gpt-test"}}
""",
}


@pytest.mark.parametrize("upstream_kind", ["anthropic", "openai"])
async def test_claude_code_fixes_negative_stock(upstream_kind, tmp_path, write_pipeline, lynkr):
    app = make_inventory_app(tmp_path / "work")
    steps = load_script(FIXTURE / "upstream_script.json", {FIXTURE_ROOT: str(app),
                                                           "/opt/python/lib/python3.11/json": str(app / "inventory")})
    up = ScriptedAnthropic(steps) if upstream_kind == "anthropic" else OpenAIUpstream(steps, agent_tool="Bash")
    runner, url = await start_app(up.app())
    try:
        _, proxy = await lynkr(write_pipeline(PIPES[upstream_kind] % url))
        code, out, err = await run([CLAUDE, "-p", "Make Store.remove refuse to go below zero stock.",
                                    "--allowedTools", "Bash Read Edit", "--model", "claude-sonnet-4-5",
                                    "--output-format", "text"],
                                   claude_env(tmp_path / "home", proxy), cwd=app)
    finally:
        await runner.cleanup()
    diag = f"exit {code}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}\nupstream turns: {up.turn}"
    assert code == 0, diag
    store = (app / "inventory" / "store.py").read_text()
    assert "raise ValueError" in store and "only {current} in stock" in store, diag
    assert up.turn == len(steps), diag                       # every scripted step was asked for
    assert "refuse to remove more than is in stock" in out, diag
    # each tool result went back to the upstream paired with its call
    agent = [r for r in up.requests if "Bash" in str(r.get("tools"))]
    last = agent[-1]
    if upstream_kind == "anthropic":
        results = [b for m in last["messages"] if isinstance(m["content"], list) for b in m["content"]
                   if b.get("type") == "tool_result"]
        uses = [b for m in last["messages"] if isinstance(m["content"], list) for b in m["content"]
                if b.get("type") == "tool_use"]
        assert [r["tool_use_id"] for r in results] == [u["id"] for u in uses] and len(uses) == 4, diag
    else:
        calls = [tc["id"] for m in last["messages"] for tc in m.get("tool_calls") or ()]
        results = [m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"]
        assert calls == results and len(calls) == 4, diag
        assert not any("x-anthropic-billing-header" in str(m.get("content")) for m in last["messages"]), diag


async def test_claude_code_parallel_calls_from_a_quirky_openai_upstream(tmp_path, write_pipeline, lynkr):
    """Two tool calls in one turn, their argument fragments interleaved, finish_reason "stop"
    (Ollama-style): Claude Code still runs both, then the edit."""
    app = make_inventory_app(tmp_path / "work")
    store = str(app / "inventory" / "store.py")
    steps = [[{"type": "tool", "name": "Bash", "input": {"command": "ls inventory", "description": "List the package"}},
              {"type": "tool", "name": "Read", "input": {"file_path": store}}],
             {"type": "tool", "name": "Edit", "input": {
                 "file_path": store, "old_string": "        self.items[sku] = self.items.get(sku, 0) - qty",
                 "new_string": "        self.items[sku] = max(0, self.items.get(sku, 0) - qty)"}},
             {"type": "text", "text": "Stock can no longer go negative."}]
    up = OpenAIUpstream(steps, agent_tool="Bash", interleave=True, finish_on_tools="stop", chunk=5)
    runner, url = await start_app(up.app())
    try:
        _, proxy = await lynkr(write_pipeline(PIPES["openai"] % url))
        code, out, err = await run([CLAUDE, "-p", "Stop stock going negative.", "--allowedTools", "Bash Read Edit",
                                    "--model", "claude-sonnet-4-5"], claude_env(tmp_path / "home", proxy), cwd=app)
    finally:
        await runner.cleanup()
    diag = f"exit {code}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}\nupstream turns: {up.turn}"
    assert code == 0, diag
    assert "max(0, self.items.get(sku, 0) - qty)" in (app / "inventory" / "store.py").read_text(), diag
    assert "Stock can no longer go negative." in out, diag
    second = [r for r in up.requests if "Bash" in str(r.get("tools"))][1]
    results = {m["tool_call_id"]: m["content"] for m in second["messages"] if m["role"] == "tool"}
    assert len(results) == 2 and any("store.py" in c for c in results.values()), diag
