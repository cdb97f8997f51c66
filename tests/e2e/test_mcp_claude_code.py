"""The real Claude Code CLI, with no MCP server configured, asks who owns a ticket; only the
tracker MCP server the proxy runs (FastMCP over stdio) knows. The scripted upstream calls
mcp__tracker__ticket_owner when the proxy offered it and answers with whatever the tool returned,
so the owner's name in the CLI's output proves the proxy ran the tool and continued the turn."""
import sys

import pytest

from tests.conftest import start_app
from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message, tool_message
from tests.helpers.mcp_servers import OWNERS
from tests.helpers.wire_cli import claude_env, cli, make_inventory_app, run
from tests.helpers.wire_upstreams import is_agent_turn

CLAUDE = cli("claude")
pytestmark = pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (run .ci/setup.d/10-clis.sh)")

PIPELINE = """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: anthropic, base_url: "%s"}
mcp:
  servers:
    tracker: {command: [%s, -m, tests.helpers.mcp_servers, tracker, stdio]}
stages:
  - {id: mcp, uses: mcp}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""


async def test_claude_code_gets_an_answer_only_an_mcp_tool_can_give(tmp_path, write_pipeline, lynkr):
    app = make_inventory_app(tmp_path / "work")
    agent_turns = []

    def script(body):
        if not is_agent_turn(body, "Bash"):
            return text_message("ok")                       # title, topic and other side requests
        agent_turns.append(body)
        last = body["messages"][-1]["content"]
        results = [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"] if isinstance(last, list) else []
        if results:
            return text_message(f"Ticket TCK-4471 is owned by {results[0]['content']}.")
        if any(t["name"] == "mcp__tracker__ticket_owner" for t in body.get("tools") or []):
            return tool_message("mcp__tracker__ticket_owner", {"ticket": "TCK-4471"}, text="Checking the tracker.")
        return text_message("I have no way to look that up.")

    up = AnthropicUpstream(script)
    runner, url = await start_app(up.app())
    try:
        _, proxy = await lynkr(write_pipeline(PIPELINE % (url, sys.executable)))
        code, out, err = await run([CLAUDE, "-p", "Who owns ticket TCK-4471?", "--model", "claude-sonnet-4-5",
                                    "--output-format", "text"], claude_env(tmp_path / "home", proxy), cwd=app)
    finally:
        await runner.cleanup()
    diag = f"exit {code}\nstdout:\n{out[-1500:]}\nstderr:\n{err[-2000:]}\nagent turns: {len(agent_turns)}"
    assert code == 0, diag
    assert OWNERS["TCK-4471"] in out, diag
    first = agent_turns[0]
    assert not any(t["name"].startswith("mcp__") for t in first["tools"][:-7]), diag   # the CLI's own tools first
    assert [t["name"] for t in first["tools"] if t["name"].startswith("mcp__")][-1] == "mcp__tracker__ticket_owner"
    # The proxy's round trip went upstream as the tool's result, paired with its call.
    assert agent_turns[1]["messages"][-2]["content"][-1]["name"] == "mcp__tracker__ticket_owner", diag
