"""MCP servers run by the proxy: their tools are offered to the model and answered in the proxy, for
every client protocol, streamed or not; real FastMCP servers over stdio and streamable HTTP."""
import asyncio
import json
import sys

import aiohttp
import duckdb
import pytest

from tests.conftest import free_port, start_app
from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message, tool_message

SERVER = [sys.executable, "-m", "tests.helpers.mcp_servers"]
OWNER = "Zanzibar Okonkwo-Lindqvist"


def pipeline(url: str, servers: dict, extra: str = "", telemetry: str = "") -> str:
    return f"""
version: 1
name: mcp-test
server: {{shed: {{enabled: false}}}}
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
mcp:
  servers: {json.dumps(servers)}
{extra}
stages:
  - {{id: mcp, uses: mcp}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
{telemetry}
"""


def stdio(which: str = "tracker", **more) -> dict:
    return {"command": SERVER + [which, "stdio"], **more}


def results_of(body: dict) -> list[dict]:
    last = body["messages"][-1]["content"]
    return [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"] if isinstance(last, list) else []


def calling(name: str, arguments: dict, then=lambda results: f"The answer: {results[0]['content']}"):
    """A model that calls `name` once, then answers with what the tool returned."""
    def script(body):
        got = results_of(body)
        if got:
            return text_message(then(got))
        return tool_message(name, arguments, text="Let me look that up.")
    return AnthropicUpstream(script)


@pytest.fixture
async def upstream():
    runners = []

    async def start(up):
        runner, url = await start_app(up.app())
        runners.append(runner)
        return url
    yield start
    for r in runners:
        await r.cleanup()


async def ask(base: str, protocol: str, question: str, *, stream: bool, tools: list | None = None) -> str:
    """The client's visible answer text (and it must carry no MCP tool call)."""
    if protocol == "anthropic":
        path, body = "/v1/messages", {"model": "claude-test", "max_tokens": 100, "stream": stream,
                                      "messages": [{"role": "user", "content": question}]}
        if tools:
            body["tools"] = tools
    elif protocol == "chat":
        path, body = "/v1/chat/completions", {"model": "claude-test", "stream": stream,
                                              "messages": [{"role": "user", "content": question}]}
    else:
        path, body = "/v1/responses", {"model": "claude-test", "stream": stream, "input": question}
    async with aiohttp.ClientSession() as s:
        async with s.post(base + path, json=body, headers={"x-api-key": "k", "authorization": "Bearer k"}) as r:
            raw = (await r.read()).decode()
            assert r.status == 200, raw
    assert "mcp__" not in raw and "mcp_call" not in raw, raw
    if not stream:
        data = json.loads(raw)
        if protocol == "anthropic":
            return "".join(b.get("text", "") for b in data["content"])
        if protocol == "chat":
            return data["choices"][0]["message"]["content"]
        return data["output_text"] if "output_text" in data else json.dumps(data["output"])
    text = []
    for line in raw.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        ev = json.loads(line[6:])
        if protocol == "anthropic" and ev.get("type") == "content_block_delta":
            text.append(ev["delta"].get("text", ""))
        elif protocol == "chat" and ev.get("choices"):
            text.append(ev["choices"][0]["delta"].get("content") or "")
        elif protocol == "responses" and ev.get("type") == "response.output_text.delta":
            text.append(ev["delta"])
    return "".join(text)


async def health(base: str) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/v1/health/providers") as r:
            return (await r.json())["mcp"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("protocol", ["anthropic", "chat", "responses"])
async def test_a_stdio_tool_is_answered_in_the_proxy_for_every_client(lynkr, write_pipeline, upstream, protocol, stream):
    """The model calls mcp__tracker__ticket_owner; the proxy runs it on the stdio server, continues the
    turn, and the client — whatever its protocol, streamed or not — sees one answer with the tool's
    result and never the call."""
    up = calling("mcp__tracker__ticket_owner", {"ticket": "TCK-4471"})
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio()})))
    text = await ask(base, protocol, "Who owns TCK-4471?", stream=stream)
    assert OWNER in text and "Let me look that up." in text
    assert len(up.requests) == 2
    offered = [t["name"] for t in up.requests[0]["tools"]]
    assert offered == sorted(offered) and "mcp__tracker__ticket_owner" in offered
    assert "mcp__tracker__broken" not in offered        # its schema is invalid: left out, not sent
    assert results_of(up.requests[1])[0]["content"] == OWNER
    state = (await health(base))["tracker"]
    assert state["state"] == "ready" and state["calls"] == {"ok": 1} and "broken" in state["rejected"]


async def test_a_streamable_http_server_with_an_allow_list(lynkr, write_pipeline, upstream, tmp_path):
    """A server reached by URL (streamable HTTP) works the same; `allow` limits what is offered."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(*SERVER, "tracker", "http", str(port),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await _wait_port(port)
        up = calling("mcp__docs__add", {"a": 20, "b": 22})
        url = await upstream(up)
        _, base = await lynkr(write_pipeline(pipeline(url, {"docs": {"url": f"http://127.0.0.1:{port}/mcp",
                                                                    "allow": ["add"]}})))
        text = await ask(base, "anthropic", "What is 20 + 22?", stream=True)
        assert "The answer: 42" in text
        assert [t["name"] for t in up.requests[0]["tools"]] == ["mcp__docs__add"]
        assert (await health(base))["docs"]["transport"] == "http"
    finally:
        proc.kill()
        await proc.wait()


async def _wait_port(port: int) -> None:
    for _ in range(300):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


async def test_the_clients_tools_come_first_and_its_calls_go_to_the_client(lynkr, write_pipeline, upstream):
    """MCP tools are appended after the client's own tools; a turn that calls a client tool goes to
    the client as usual, with the MCP call left out."""
    def script(body):
        msg = tool_message("Bash", {"command": "ls"})
        msg["content"].insert(0, {"type": "tool_use", "id": "toolu_m", "name": "mcp__tracker__add", "input": {"a": 1, "b": 2}})
        return msg
    up = AnthropicUpstream(script)
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio()})))
    bash = {"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {}}}
    async with aiohttp.ClientSession() as s:
        body = {"model": "claude-test", "max_tokens": 10, "tools": [bash], "messages": [{"role": "user", "content": "ls"}]}
        async with s.post(base + "/v1/messages", json=body) as r:
            msg = await r.json()
    assert up.requests[0]["tools"][0]["name"] == "Bash"
    assert [b["name"] for b in msg["content"] if b["type"] == "tool_use"] == ["Bash"]
    assert msg["stop_reason"] == "tool_use" and len(up.requests) == 1


async def test_the_offered_tools_are_the_same_bytes_every_turn(lynkr, write_pipeline, upstream):
    """The tool list the proxy adds is identical from turn to turn (the provider's prompt cache holds)."""
    up = AnthropicUpstream(lambda body: text_message("ok"))
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio(), "more": stdio()})))
    for _ in range(3):
        await ask(base, "anthropic", "hello", stream=False)
    raw = [json.dumps(r["tools"]) for r in up.requests]
    assert len(set(raw)) == 1
    assert [t["name"] for t in up.requests[0]["tools"]][:1] == ["mcp__more__add"]


async def test_a_server_that_crashes_mid_call_gives_a_tool_error_and_the_turn_completes(lynkr, write_pipeline, upstream):
    up = calling("mcp__tracker__crash", {}, then=lambda r: f"The tool failed: {r[0]['content']} ({r[0].get('is_error')})")
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio()})))
    text = await ask(base, "anthropic", "crash it", stream=False)
    assert "The tool failed: tracker__crash failed" in text and "(True)" in text
    state = (await health(base))["tracker"]
    assert state["state"] == "backoff" and state["failures"] == 1 and state["calls"] == {"failed": 1}
    # while it waits to be restarted its tools are still offered (same prefix) and a call is a tool error
    up.script = calling("mcp__tracker__add", {"a": 1, "b": 1}, then=lambda r: f"got {r[0]['content']}").script
    text = await ask(base, "anthropic", "add", stream=False)
    assert "got 2" in text or "is backoff" in text


async def test_a_server_that_never_answers_times_out(lynkr, write_pipeline, upstream):
    up = calling("mcp__tracker__hang", {}, then=lambda r: f"error: {r[0]['content']}")
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio()}, extra="  timeout_s: 1")))
    text = await ask(base, "chat", "hang", stream=True)
    assert "did not answer within 1 s" in text
    assert (await health(base))["tracker"]["calls"] == {"timeout": 1}


async def test_a_50_mb_result_is_a_tool_error_and_a_large_one_is_cut_to_the_cap(lynkr, write_pipeline, upstream):
    """A message over the transport's 8 MB bound is dropped as it arrives (the server keeps running);
    a result under it but over max_result_chars is cut, with a note saying so."""
    up = calling("mcp__tracker__huge", {"mb": 50}, then=lambda r: f"got {len(r[0]['content'])} characters")
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio()}, extra="  max_result_chars: 5000")))
    await ask(base, "anthropic", "huge", stream=False)
    sent = results_of(up.requests[1])[0]
    assert sent["is_error"] and "larger than 8388608 bytes" in sent["content"]
    up.script = calling("mcp__tracker__huge", {"mb": 1}, then=lambda r: f"got {len(r[0]['content'])} characters").script
    text = await ask(base, "anthropic", "huge", stream=False)
    sent = results_of(up.requests[3])[0]["content"]
    assert sent.startswith("x" * 5000) and sent.endswith(f"[lynkr: result cut at 5000 of {1024 * 1024} characters]")
    assert text.endswith(f"got {len(sent)} characters")
    state = (await health(base))["tracker"]
    assert state["calls"] == {"failed": 1, "ok": 1} and state["starts"] == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_calling_a_tool_in_a_loop_is_stopped_by_the_step_limit(lynkr, write_pipeline, upstream, stream):
    up = AnthropicUpstream(lambda body: tool_message("mcp__tracker__add", {"a": 1, "b": 2}, text="again."))
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio()}, extra="  max_steps: 3")))
    text = await ask(base, "anthropic", "loop", stream=stream)
    assert len(up.requests) == 4 and text.count("again.") == 4


async def test_compact_catalogue_one_tool_schema_on_demand(lynkr, write_pipeline, upstream):
    """catalogue: compact offers one mcp_call tool listing the tools; the model asks for a schema,
    then calls with arguments; bad arguments get the schema back as a tool error."""
    def script(body):
        got = results_of(body)
        if not got:
            return tool_message("mcp_call", {"tool": "tracker__ticket_owner"})
        if "arguments schema" in got[0]["content"] and not got[0].get("is_error"):
            if len(body["messages"]) < 5:
                return tool_message("mcp_call", {"tool": "tracker__ticket_owner", "arguments": {"ticket": 4471}})
        if got[0].get("is_error"):
            return tool_message("mcp_call", {"tool": "tracker__ticket_owner", "arguments": {"ticket": "TCK-4471"}})
        return text_message(f"owner: {got[0]['content']}")
    up = AnthropicUpstream(script)
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio()}, extra="  catalogue: compact")))
    text = await ask(base, "anthropic", "Who owns TCK-4471?", stream=True)
    assert text == f"owner: {OWNER}"
    tools = up.requests[0]["tools"]
    assert [t["name"] for t in tools] == ["mcp_call"] and "- tracker__ticket_owner: Who owns" in tools[0]["description"]
    assert "ticket: 4471 is not of type 'string'" in results_of(up.requests[2])[0]["content"]


async def test_servers_get_only_the_env_they_are_given(lynkr, write_pipeline, upstream, monkeypatch):
    monkeypatch.setenv("LYNKR_TEST_SECRET", "proxy-only")
    up = calling("mcp__tracker__env_var", {"name": "LYNKR_TEST_SECRET"})
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio(env={"GIVEN": "yes"})})))
    assert "The answer: <unset>" in await ask(base, "anthropic", "env", stream=False)
    up2 = calling("mcp__tracker__env_var", {"name": "GIVEN"})
    up.script = up2.script
    assert "The answer: yes" in await ask(base, "anthropic", "env", stream=False)


async def test_every_call_is_in_telemetry_arguments_only_with_content(lynkr, write_pipeline, upstream, tmp_path):
    for content in (False, True):
        up = calling("mcp__tracker__add", {"a": 2, "b": 3})
        url = await upstream(up)
        db = tmp_path / f"t{content}.duckdb"
        tele = f"telemetry: {{path: '{db}', content: {str(content).lower()}}}"
        engine, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio()}, telemetry=tele), f"p{content}.yaml"),
                                   telemetry_path=str(db))
        await ask(base, "anthropic", "add", stream=False)
        await engine.stop()
        con = duckdb.connect(str(db), read_only=True)
        detail = json.loads(con.execute("select detail from stage_events where uses = 'mcp'").fetchone()[0])
        con.close()
        [call] = detail["calls"]
        assert call["tool"] == "add" and call["server"] == "tracker" and call["outcome"] == "ok" and call["ms"] > 0
        assert ("arguments" in call) is content and call.get("arguments", {"a": 2, "b": 3}) == {"a": 2, "b": 3}


async def test_metrics_show_servers_and_calls(lynkr, write_pipeline, upstream):
    up = calling("mcp__tracker__add", {"a": 2, "b": 3})
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"tracker": stdio()})))
    await ask(base, "anthropic", "add", stream=False)
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/metrics") as r:
            text = await r.text()
    assert 'lynkr_mcp_server_up{server="tracker"} 1' in text
    assert 'lynkr_mcp_tool_calls_total{server="tracker",outcome="ok"} 1' in text


BAD = """\
version: 1
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:1"}
mcp:
  servers:
%s
stages:
  - {id: mcp, uses: mcp}
  - {id: call, uses: provider_call, with: {to: "up:m"}}
"""


@pytest.mark.parametrize("server, line, says", [
    ("    tracker: {comand: [python, s.py]}", 6, "unknown option 'comand' (did you mean 'command'?)"),
    ("    tracker: {command: [python, s.py], url: 'http://x/mcp'}", 6, "mcp.servers.tracker: a server is either"),
    ("    tracker: {env: {A: b}}", 6, "mcp.servers.tracker: a server is either"),
    ("    tracker: {url: 'ftp://x/mcp'}", 6, "mcp.servers.tracker"),
    ("    a__b: {command: [python]}", 5, "mcp.servers: 'a__b' does not match"),
    ("    tracker: {command: []}", 6, "mcp.servers.tracker"),
])
def test_a_bad_mcp_section_names_file_line_and_path(write_pipeline, server, line, says):
    from lynkr.config import load_config
    from lynkr.engine import build_pipeline
    from lynkr.errors import ConfigError
    path = write_pipeline(BAD % server)
    with pytest.raises(ConfigError) as e:
        build_pipeline(load_config(path, {}), dry_run=True)
    message = str(e.value)
    assert f"{path}:{line}" in message and says in message, message


def pids_of(names):
    """A model that asks every server in `names` for its pid in one turn, then says them."""
    def script(body):
        got = results_of(body)
        if got:
            return text_message("pids " + " ".join(r["content"] for r in got))
        msg = tool_message(f"mcp__{names[0]}__pid", {})
        for n in names[1:]:
            msg["content"].append({"type": "tool_use", "id": f"toolu_{n}", "name": f"mcp__{n}__pid", "input": {}})
        return msg
    return script


async def test_reload_with_a_changed_mcp_section_starts_and_stops_the_right_servers(lynkr, write_pipeline, upstream):
    """Servers a and b run; the new file drops a, keeps b as it was and adds c: after the reload a's
    process is gone, b is the same process (not restarted) and c starts on first use."""
    import os
    up = AnthropicUpstream(pids_of(["a", "b"]))
    url = await upstream(up)
    path = write_pipeline(pipeline(url, {"a": stdio(), "b": stdio()}))
    engine, base = await lynkr(path)
    pid_a, pid_b = (await ask(base, "anthropic", "pids", stream=False)).split()[-2:]
    os.kill(int(pid_a), 0)                         # running
    write_pipeline(pipeline(url, {"b": stdio(), "c": stdio(env={"X": "1"})}))
    assert await engine.reload()
    up.script = pids_of(["b", "c"])
    still_b, pid_c = (await ask(base, "anthropic", "pids", stream=False)).split()[-2:]
    state = await health(base)
    assert sorted(state) == ["b", "c"] and state["b"]["starts"] == 1 and state["c"]["state"] == "ready"
    assert still_b == pid_b and pid_c not in (pid_a, pid_b)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_a), 0)
    await engine.stop()                              # shutdown stops the rest
    for pid in (pid_b, pid_c):
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


@pytest.mark.parametrize("spec, says", [
    ({"command": [sys.executable, "-c", "import time; time.sleep(1000)"], "start_timeout_s": 1}, "did not start within 1 s"),
    ({"command": ["/nonexistent/mcp-server"]}, "could not start"),
    ({"url": "http://127.0.0.1:9/mcp", "start_timeout_s": 2}, ""),
])
async def test_a_server_that_never_starts_leaves_the_turn_alone(lynkr, write_pipeline, upstream, spec, says):
    """A server that never answers its handshake, a command that does not exist, a URL nobody serves:
    the request is answered without that server's tools, and its state says why."""
    up = AnthropicUpstream(lambda body: text_message("answered anyway"))
    url = await upstream(up)
    _, base = await lynkr(write_pipeline(pipeline(url, {"dead": spec, "tracker": stdio()})))
    assert await ask(base, "anthropic", "hi", stream=True) == "answered anyway"
    offered = {t["name"] for t in up.requests[0]["tools"]}
    assert "mcp__tracker__add" in offered and not any(n.startswith("mcp__dead__") for n in offered)
    state = (await health(base))["dead"]
    assert state["state"] == "backoff" and says in state["last_error"] and state["failures"] == 1
