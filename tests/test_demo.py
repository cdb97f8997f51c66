"""The built-in `demo` provider (pipelines/demo.yaml) over real HTTP: every client protocol,
streaming and not, a tool loop, /v1/models, and what it cannot do refused with a 4xx in the
client's own shape. Also model names that do not fit the route, and bad model names."""
import json

import aiohttp
import pytest

from lynkr.cli import shipped_pipelines
from lynkr.cli.demo import demo_checks

DEMO = shipped_pipelines() / "demo.yaml"


@pytest.fixture
async def demo(lynkr, tmp_path, monkeypatch):
    monkeypatch.setenv("LYNKR_STATE_DIR", str(tmp_path / "state"))
    engine, url = await lynkr(DEMO)
    async with aiohttp.ClientSession(url) as s:
        yield engine, s


async def test_every_protocol_streaming_and_not_and_the_tool_loop(demo):
    """The same checks `lynkr demo --check` runs: Anthropic, Chat Completions and Responses, JSON and
    SSE, a tool call when tools are offered and the user asks, text after the tool result."""
    _engine, s = demo
    for what, path, body, looks_right in demo_checks():
        async with s.post(path, json=body, headers={"x-lynkr-cache": "bypass"}) as r:
            text = await r.text()
        assert r.status == 200 and looks_right(text.replace(": ", ":")), f"{what}: {r.status} {text[:500]}"


async def test_tool_arguments_follow_the_offered_schema(demo):
    """Codex's exec_command takes `cmd`; a backticked command in the user's words is the one run."""
    _engine, s = demo
    body = {"model": "gpt-5-codex", "input": "please run `git status` for me",
            "tools": [{"type": "function", "name": "exec_command", "parameters": {
                "type": "object", "properties": {"cmd": {"type": "string"}, "yield_time_ms": {"type": "integer"}},
                "required": ["cmd", "yield_time_ms"]}}]}
    async with s.post("/v1/responses", json=body) as r:
        out = await r.json()
    call = next(i for i in out["output"] if i["type"] == "function_call")
    assert call["name"] == "exec_command"
    assert json.loads(call["arguments"]) == {"cmd": "git status", "yield_time_ms": 1}


async def test_plain_question_gets_text_not_a_tool_call(demo):
    _engine, s = demo
    body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hello!"}],
            "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]}
    async with s.post("/v1/messages", json=body) as r:
        out = await r.json()
    assert out["stop_reason"] == "end_turn" and out["content"][0]["type"] == "text"
    assert r.headers["x-lynkr-model"].startswith("demo-")


async def test_what_the_demo_cannot_do_is_a_4xx_in_the_clients_shape(demo):
    """An image, or a forced tool the request does not offer: 400, Anthropic- and OpenAI-shaped."""
    _engine, s = demo
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    async with s.post("/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [
            {"role": "user", "content": [image, {"type": "text", "text": "what is this?"}]}]}) as r:
        body = await r.json()
    assert r.status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "text only" in body["error"]["message"]
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "Deploy"}}}
    async with s.post("/v1/chat/completions", json=chat) as r:
        body = await r.json()
    assert r.status == 400 and "Deploy" in body["error"]["message"] and "does not offer" in body["error"]["message"]


@pytest.mark.parametrize("model,why", [("", "must not be empty"), ("x" * 5000, "at most 256"),
                                       ("claude\r\nX-Injected: 1", "control characters"),
                                       ("gpt-4o\x00\x1b[31m", "control characters")])
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/v1/responses"])
async def test_bad_model_names_are_400_in_the_clients_shape(demo, path, model, why):
    _engine, s = demo
    body = ({"model": model, "input": "hi"} if path.endswith("responses") else
            {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    async with s.post(path, json=body) as r:
        out = await r.json()
    assert r.status == 400, out
    if path == "/v1/messages":
        assert out["type"] == "error" and why in out["error"]["message"]
    else:
        assert why in out["error"]["message"] and "type" in out["error"]


async def test_models_lists_what_the_pipeline_serves_in_the_clients_format(demo):
    _engine, s = demo
    async with s.get("/v1/models") as r:
        openai = await r.json()
    async with s.get("/v1/models", headers={"anthropic-version": "2023-06-01"}) as r:
        anthropic = await r.json()
    ids = [m["id"] for m in openai["data"]]
    assert {"demo-simple", "demo-medium", "demo-complex", "demo-reasoning", "lynkr-demo"} <= set(ids)
    assert openai["object"] == "list" and all(m["object"] == "model" for m in openai["data"])
    assert [m["id"] for m in anthropic["data"]] == ids and all(m["type"] == "model" for m in anthropic["data"])


MAPPED = """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: anthropic, base_url: "%s" %s}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""


# A local double stands in for api.anthropic.com: `family: claude` says its names are Anthropic's.
@pytest.mark.parametrize("extra,sent", [(", family: claude", "claude-sonnet-4-5"),
                                        (", family: claude, default_model: claude-haiku-4-5", "claude-haiku-4-5")])
async def test_a_model_of_another_family_is_sent_as_the_providers_default(anthropic_upstream, write_pipeline, lynkr,
                                                                          extra, sent):
    """Codex's gpt-5-codex on an `anthropic:*` route reaches Anthropic as its default model (or the
    entry's `default_model`), said in `x-lynkr-model`; a Claude model name passes unchanged.
    (At api.anthropic.com the `claude` family applies without saying so: the explain test below.)"""
    _engine, url = await lynkr(write_pipeline(MAPPED % (anthropic_upstream.url, extra)))
    async with aiohttp.ClientSession(url) as s:
        async with s.post("/v1/responses", json={"model": "gpt-5-codex", "input": "hi"}) as r:
            assert r.status == 200, await r.text()
            assert r.headers["x-lynkr-model"] == sent
        async with s.post("/v1/messages", json={"model": "claude-opus-4-1", "max_tokens": 5,
                                                "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 200 and r.headers["x-lynkr-model"] == "claude-opus-4-1"
    assert [b["model"] for b in anthropic_upstream.requests] == [sent, "claude-opus-4-1"]


def test_explain_shows_the_model_that_would_be_sent(tmp_path):
    import subprocess
    import sys
    req = tmp_path / "codex.json"
    req.write_text(json.dumps({"path": "/v1/responses", "headers": {}, "body": {"model": "gpt-5-codex", "input": "hi"}}))
    pipe = tmp_path / "p.yaml"
    pipe.write_text(MAPPED % ("https://api.anthropic.com", ""))
    res = subprocess.run([sys.executable, "-m", "lynkr.cli", "explain", str(pipe), str(req)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    route = next(line for line in res.stdout.splitlines() if line.startswith("route:"))
    assert route.startswith("route: up:claude-sonnet-4-5") and "gpt-5-codex" in route, route
