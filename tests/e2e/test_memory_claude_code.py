"""The real Claude Code CLI through a pipeline with `memory`: a fact stated in one `claude -p`
session is answered from in a new session of the same project — the scripted upstream answers
with the fact only when the proxy put it in the request, so the CLI's output proves the request
carried it."""
import asyncio

import pytest

from lynkr.memory.store import close_memory, open_memory
from tests.conftest import start_app
from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message
from tests.helpers.wire_cli import claude_env, cli, make_inventory_app, run
from tests.helpers.wire_upstreams import is_agent_turn

CLAUDE = cli("claude")
pytestmark = pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (run .ci/setup.d/10-clis.sh)")

PIPELINE = """
version: 1
server: {shed: {enabled: false}}
state_dir: %s
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: memory, uses: memory}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""
FACT = "port 8089"


def last_user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "\n".join(b.get("text", "") for b in content if isinstance(b, dict))


async def test_claude_code_recalls_a_fact_from_an_earlier_session(tmp_path, write_pipeline, lynkr):
    app = make_inventory_app(tmp_path / "work")
    asked = []

    def script(body):
        if not is_agent_turn(body, "Bash"):
            return text_message("ok")                       # title, topic and other side requests
        text = last_user_text(body)
        if "Which port" in text:
            asked.append(body)
            memory = text[text.find("<lynkr-memory>"):] if "<lynkr-memory>" in text else ""
            return text_message("The inventory API listens on port 8089." if FACT in memory else "I do not know the port.")
        return text_message("Noted.")

    up = AnthropicUpstream(script)
    runner, url = await start_app(up.app())
    state = tmp_path / "state"
    try:
        _, proxy = await lynkr(write_pipeline(PIPELINE % (state, url)))
        env = claude_env(tmp_path / "home", proxy)
        argv = ["--model", "claude-sonnet-4-5", "--output-format", "text"]
        code1, out1, err1 = await run([CLAUDE, "-p", "Note: the inventory API runs on port 8089.", *argv], env, cwd=app)
        store = open_memory(str(state / "memory.duckdb"), 384)       # the proxy's store: wait for the after hook
        try:
            for _ in range(500):
                if store.list():
                    break
                await asyncio.sleep(0.02)
            remembered = [(m.project, m.text) for m in store.list()]
        finally:
            close_memory(store)
        code2, out2, err2 = await run([CLAUDE, "-p", "Which port does the inventory API listen on?", *argv], env, cwd=app)
    finally:
        await runner.cleanup()
    diag = f"exit {code1}/{code2}\nstdout:\n{out1[-1000:]}\n{out2[-1000:]}\nstderr:\n{err1[-1500:]}\n{err2[-1500:]}"
    assert code1 == 0 and code2 == 0, diag
    assert remembered and remembered[0][0] == str(app) and FACT in remembered[0][1], (remembered, diag)
    assert asked, diag
    assert "port 8089" in out2, diag
    # The fact was appended to the newest user turn, after everything Claude Code sent in it.
    last = asked[-1]["messages"][-1]["content"]
    assert last[-1]["text"].startswith("<lynkr-memory>") and FACT in last[-1]["text"], diag
