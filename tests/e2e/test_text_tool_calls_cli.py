"""The real CLIs complete their tool loops against upstreams that write every tool call as text:
Claude Code through an Ollama-kind double answering in Qwen's `<tool_call>` and in Llama's
`<|python_tag|>` format (the fix-negative-stock session: the edit lands), and Codex through an
OpenAI-kind double with `text_tool_calls: on`."""
import json

import pytest

from tests.conftest import serving, start_app
from tests.helpers.provider_doubles import Answer, OllamaDouble
from tests.helpers.wire_cli import FIXTURE, FIXTURE_ROOT, claude_env, cli, codex_env, make_inventory_app, run
from tests.helpers.wire_upstreams import OpenAIUpstream, is_agent_turn, load_script

CLAUDE, CODEX = cli("claude"), cli("codex")


def as_text(step: dict, fmt: str) -> str:
    """A script step written the way the model family writes calls when the server does not parse them."""
    if step["type"] == "text":
        return step["text"]
    if fmt == "qwen":
        call = json.dumps({"name": step["name"], "arguments": step["input"]})
        return f"I'll use {step['name']} next.\n\n<tool_call>\n{call}\n</tool_call>"
    return "<|python_tag|>" + json.dumps({"name": step["name"], "parameters": step["input"]}) + "<|eom_id|>"


class TextScript:
    """Agent turns get the next step as text; side requests (titles, summaries) a short answer."""

    def __init__(self, steps: list, fmt: str):
        self.steps, self.fmt, self.turn = steps, fmt, 0

    def __call__(self, body: dict) -> Answer:
        if not is_agent_turn({"tools": [t.get("function", t) for t in body.get("tools") or ()]}, "Bash") \
                or self.turn >= len(self.steps):
            return Answer(text="ok")
        step = self.steps[self.turn]
        self.turn += 1
        return Answer(text=as_text(step, self.fmt))


@pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (run .ci/setup.d/10-clis.sh)")
@pytest.mark.parametrize("fmt", ["qwen", "llama"])
async def test_claude_code_fixes_negative_stock_through_text_calls(fmt, tmp_path, write_pipeline, lynkr):
    app = make_inventory_app(tmp_path / "work")
    steps = load_script(FIXTURE / "upstream_script.json", {FIXTURE_ROOT: str(app),
                                                           "/opt/python/lib/python3.11/json": str(app / "inventory")})
    script = TextScript(steps, fmt)
    up = OllamaDouble(script)
    async with serving(up):
        _, proxy = await lynkr(write_pipeline(f"""
version: 1
server: {{shed: {{enabled: false}}}}
providers:
  local: {{kind: ollama, base_url: "{up.url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "local:qwen2.5-coder:7b"}}}}
"""))
        code, out, err = await run([CLAUDE, "-p", "Make Store.remove refuse to go below zero stock.",
                                    "--allowedTools", "Bash Read Edit", "--model", "claude-sonnet-4-5",
                                    "--output-format", "text"], claude_env(tmp_path / "home", proxy), cwd=app)
    diag = f"exit {code}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}\nturns: {script.turn}\nproblems: {up.problems}"
    assert code == 0, diag
    store = (app / "inventory" / "store.py").read_text()
    assert "raise ValueError" in store and "only {current} in stock" in store, diag
    assert script.turn == len(steps), diag
    assert "refuse to remove more than is in stock" in out, diag
    assert up.problems == [], diag           # every tool result went back paired with its call
    last = [r for r in up.requests if "Bash" in str(r.get("tools"))][-1]
    assert sum(len(m.get("tool_calls") or ()) for m in last["messages"]) == 4, diag
    assert "<tool_call>" not in str(last["messages"]) and "python_tag" not in str(last["messages"]), diag


@pytest.mark.skipif(CODEX is None, reason="Codex CLI not installed (run .ci/setup.d/10-clis.sh)")
async def test_codex_tool_loop_through_text_calls(tmp_path, write_pipeline, lynkr):
    app = make_inventory_app(tmp_path / "work")
    final = "The inventory package holds __init__.py, report.py and store.py."
    call = json.dumps({"name": "exec_command", "arguments": {"cmd": "ls inventory"}})
    up = OpenAIUpstream([{"type": "text", "text": f"Listing the package.\n<tool_call>\n{call}\n</tool_call>"},
                         {"type": "text", "text": final}], agent_tool="exec_command")
    runner, url = await start_app(up.app())
    try:
        _, proxy = await lynkr(write_pipeline(f"""
version: 1
server: {{shed: {{enabled: false}}}}
providers:
  up: {{kind: openai, base_url: "{url}/v1", api_key: test, text_tool_calls: on}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:gpt-test"}}}}
"""))
        code, out, err = await run([CODEX, "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                                    "list the files in the inventory package"], codex_env(tmp_path / "home", proxy), cwd=app)
    finally:
        await runner.cleanup()
    diag = f"exit {code}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-4000:]}\nupstream turns: {up.turn}"
    assert code == 0, diag
    assert final in out and up.turn == 2, diag
    last = [r for r in up.requests if "exec_command" in str(r.get("tools"))][-1]
    text = str(last["messages"])
    assert "store.py" in text and "report.py" in text, diag       # the command really ran
    assert any(m.get("tool_calls") for m in last["messages"]), diag
