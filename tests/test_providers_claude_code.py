"""The real Claude Code CLI through Lynkr to the provider kinds whose conversions live in
lynkr/providers (Ollama, Bedrock, Gemini): `claude -p` runs the fix-negative-stock tool loop
(Bash → Read → Edit → Bash → text) against the validating doubles, and the edit lands on disk.
Skips without the CLI (.ci/setup.d/10-clis.sh)."""
from __future__ import annotations

import pytest

from tests.helpers.provider_doubles import Answer, script_from_fixture
from tests.helpers.provider_harness import make_double, serve_double
from tests.helpers.wire_cli import FIXTURE, FIXTURE_ROOT, claude_env, cli, make_inventory_app, run
from tests.helpers.wire_upstreams import load_script

CLAUDE = cli("claude")
pytestmark = pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (run .ci/setup.d/10-clis.sh)")


def _tool_names(kind: str, body: dict) -> list[str]:
    if kind == "ollama":
        return [t["function"]["name"] for t in body.get("tools") or []]
    if kind == "bedrock":
        return [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools") or [] if "toolSpec" in t]
    return [d["name"] for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]


@pytest.fixture
async def runners():
    rs = []
    yield rs
    for r in rs:
        await r.cleanup()


async def _proxy_to_double(kind: str, tool: str, steps: list, runners, write_pipeline, lynkr):
    """A Lynkr in front of a `kind` double that plays `steps` to agent turns (requests offering
    `tool`) and a short text to side requests (titles, topic checks): (its URL, the double, the
    agent turns answered so far as {"n": …})."""
    turn = {"n": 0}

    def script(body):
        if tool not in _tool_names(kind, body) or turn["n"] >= len(steps):
            return Answer(text="ok")
        turn["n"] += 1
        return steps[turn["n"] - 1]

    double = make_double(kind, script)
    url = await serve_double(double, runners)
    prov = {"ollama": f"{{kind: ollama, base_url: '{url}'}}",
            "bedrock": f"{{kind: bedrock, base_url: '{url}', region: us-east-1, api_key: test-bedrock-key}}",
            "gemini": f"{{kind: gemini, base_url: '{url}/v1beta', api_key: test-gemini-key}}"}[kind]
    _, proxy = await lynkr(write_pipeline(
        "version: 1\nserver: {shed: {enabled: false}}\n"
        f"providers:\n  up: {prov}\n"
        "stages:\n  - {id: call, uses: provider_call, with: {to: 'up:model-x'}}\n"))
    return proxy, double, turn


@pytest.mark.parametrize("kind", ["ollama", "bedrock", "gemini"])
async def test_claude_code_tool_loop_through_provider(kind, tmp_path, write_pipeline, lynkr, runners):
    app = make_inventory_app(tmp_path / "work")
    steps = script_from_fixture(load_script(FIXTURE / "upstream_script.json", {
        FIXTURE_ROOT: str(app), "/opt/python/lib/python3.11/json": str(app / "inventory")}))
    proxy, double, turn = await _proxy_to_double(kind, "Bash", steps, runners, write_pipeline, lynkr)
    code, out, err = await run([CLAUDE, "-p", "Make Store.remove refuse to go below zero stock.",
                                "--allowedTools", "Bash Read Edit", "--model", "claude-sonnet-4-5",
                                "--output-format", "text"], claude_env(tmp_path / "home", proxy), cwd=app)
    diag = f"exit {code}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}\nturns {turn['n']}\nproblems {double.problems}"
    assert code == 0, diag
    assert double.problems == [], diag
    assert turn["n"] == len(steps), diag
    store = (app / "inventory" / "store.py").read_text()
    assert "raise ValueError" in store and "only {current} in stock" in store, diag
    assert "refuse to remove more than is in stock" in out, diag


CODEX = cli("codex")
CODEX_FINAL = "The inventory package holds __init__.py, report.py and store.py."


@pytest.mark.skipif(CODEX is None, reason="Codex CLI not installed (run .ci/setup.d/10-clis.sh)")
@pytest.mark.parametrize("kind", ["ollama", "bedrock", "gemini"])
async def test_codex_tool_loop_through_provider(kind, tmp_path, write_pipeline, lynkr, runners):
    """Codex (Responses API) → Lynkr → a native provider: exec_command, its output back, final text."""
    from tests.helpers.wire_cli import codex_env

    app = make_inventory_app(tmp_path / "work")
    steps = [Answer(text=None, tools=[("exec_command", {"cmd": "ls inventory"})]), Answer(text=CODEX_FINAL)]
    proxy, double, turn = await _proxy_to_double(kind, "exec_command", steps, runners, write_pipeline, lynkr)
    code, out, err = await run([CODEX, "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                                "list the files in the inventory package"], codex_env(tmp_path / "home", proxy), cwd=app)
    diag = f"exit {code}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-4000:]}\nturns {turn['n']}\nproblems {double.problems}"
    assert code == 0, diag
    assert double.problems == [], diag
    assert CODEX_FINAL in out and turn["n"] == 2, diag
    assert "store.py" in str(double.requests[-1]), diag          # the command's real output went upstream
