"""The real Codex CLI through the proxy: `codex exec` with a `model_providers` entry
(`wire_api = "responses"`) completes a tool loop (exec_command → its output → final text) like
`../shared/fixtures/codex/list-files`, against an Anthropic-speaking and an OpenAI-speaking
scripted upstream."""
import pytest

from tests.conftest import start_app
from tests.helpers.wire_cli import cli, codex_env, make_inventory_app, run
from tests.helpers.wire_upstreams import OpenAIUpstream, ScriptedAnthropic

CODEX = cli("codex")
pytestmark = pytest.mark.skipif(CODEX is None, reason="Codex CLI not installed (run .ci/setup.d/10-clis.sh)")

PIPES = {
    "anthropic": """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:claude-test"}}
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
FINAL = "The inventory package holds __init__.py, report.py and store.py."


@pytest.mark.parametrize("upstream_kind", ["anthropic", "openai"])
async def test_codex_exec_tool_loop(upstream_kind, tmp_path, write_pipeline, lynkr):
    app = make_inventory_app(tmp_path / "work")
    steps = [{"type": "tool", "name": "exec_command", "input": {"cmd": "ls inventory"}},
             {"type": "text", "text": FINAL}]
    up = (ScriptedAnthropic(steps, agent_tool="exec_command") if upstream_kind == "anthropic"
          else OpenAIUpstream(steps, agent_tool="exec_command"))
    runner, url = await start_app(up.app())
    try:
        _, proxy = await lynkr(write_pipeline(PIPES[upstream_kind] % url))
        code, out, err = await run([CODEX, "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                                    "list the files in the inventory package"],
                                   codex_env(tmp_path / "home", proxy), cwd=app)
    finally:
        await runner.cleanup()
    diag = f"exit {code}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-4000:]}\nupstream turns: {up.turn}"
    assert code == 0, diag
    assert FINAL in out, diag
    assert up.turn == 2, diag
    last = [r for r in up.requests if "exec_command" in str(r.get("tools"))][-1]
    text = str(last["messages"])
    assert "store.py" in text and "report.py" in text, diag      # the command's real output came back
