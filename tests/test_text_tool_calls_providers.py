"""`text_tool_calls` through the proxy: an Ollama (or llama.cpp-flavoured OpenAI) upstream that
writes its tool calls as text gives Anthropic, OpenAI Chat and Responses clients real tool calls,
streamed or not; hallucinated calls are dropped with a visible notice, counted on /metrics and
recorded in telemetry; hosted APIs are left alone unless the option says `on`; and a stream with
no call-like text is forwarded as it arrives."""
import asyncio

import aiohttp
import orjson
import pytest
from aiohttp import web

from lynkr.errors import ConfigError
from tests.conftest import serving, start_app
from tests.helpers.provider_doubles import Answer, OllamaDouble
from tests.helpers.wire_upstreams import OpenAIUpstream
from tests.test_metrics import parse, total

TOOLS = [{"name": "Read", "description": "Read a file",
          "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"},
                                                            "limit": {"type": "integer"}},
                           "required": ["file_path"]}}]
HERMES = 'Let me look.\n<tool_call>\n{"name": "Read", "arguments": {"file_path": "a.py", "limit": "20"}}\n</tool_call>'
PIPE = """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: %s, base_url: "%s"%s}
stages:
  - {id: call, uses: provider_call, with: {to: "up:model-x"}}
telemetry: {flush_interval_s: 0.05}
"""


def body(stream: bool) -> dict:
    return {"model": "claude-x", "max_tokens": 100, "stream": stream, "tools": TOOLS,
            "messages": [{"role": "user", "content": "read a.py"}]}


def sse_events(raw: str) -> list[dict]:
    return [orjson.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ") and line[6:] != "[DONE]"]


async def anthropic_blocks(s, url, stream: bool) -> tuple[list, str]:
    async with s.post(url + "/v1/messages", json=body(stream)) as r:
        assert r.status == 200, await r.text()
        if not stream:
            msg = await r.json()
            return msg["content"], msg["stop_reason"]
        events = sse_events(await r.text())
    blocks: dict[int, dict] = {}
    stop = None
    for ev in events:
        if ev["type"] == "content_block_start":
            blocks[ev["index"]] = {**ev["content_block"], "_json": ""}
        elif ev["type"] == "content_block_delta":
            d = ev["delta"]
            b = blocks[ev["index"]]
            if d["type"] == "text_delta":
                b["text"] += d["text"]
            elif d["type"] == "input_json_delta":
                b["_json"] += d["partial_json"]
        elif ev["type"] == "message_delta":
            stop = ev["delta"]["stop_reason"]
    out = []
    for i in sorted(blocks):
        b = blocks[i]
        if b["type"] == "tool_use":
            b["input"] = orjson.loads(b["_json"] or "{}")
        b.pop("_json")
        out.append(b)
    return out, stop


@pytest.mark.parametrize("stream", [False, True])
async def test_ollama_text_call_becomes_a_tool_use_block(stream, write_pipeline, lynkr, tmp_path):
    """Ollama (auto = on): the Hermes block in the text is a tool_use with typed input, the prose
    stays, stop_reason is tool_use; /metrics and the telemetry detail count the recovery."""
    up = OllamaDouble([Answer(text=HERMES)])
    async with serving(up):
        engine, url = await lynkr(write_pipeline(PIPE % ("ollama", up.url, "")))
        async with aiohttp.ClientSession() as s:
            blocks, stop = await anthropic_blocks(s, url, stream)
            for _ in range(100):
                if engine.writer.written >= 1:
                    break
                await asyncio.get_running_loop().run_in_executor(None, engine.writer.flush)
            async with s.get(url + "/metrics") as r:
                m = parse(await r.text())
    assert [b["type"] for b in blocks] == ["text", "tool_use"]
    assert blocks[0]["text"] == "Let me look."
    assert blocks[1]["name"] == "Read" and blocks[1]["input"] == {"file_path": "a.py", "limit": 20}
    assert stop == "tool_use"
    assert total(m, "lynkr_text_tool_calls_total", provider="up", outcome="recovered") == 1
    from lynkr.telemetry.reports import run_query
    _, rows = run_query(str(tmp_path / "telemetry.duckdb"), "SELECT detail FROM stage_events WHERE stage_id = 'call'")
    assert orjson.loads(rows[0][0])["text_tool_calls"] == {"calls": 1, "formats": ["tool_call"], "rejected": []}


async def test_openai_chat_and_responses_clients_get_real_calls(write_pipeline, lynkr):
    """The same recovery reaches OpenAI Chat (`tool_calls`) and Responses (`function_call`) clients."""
    up = OllamaDouble([Answer(text=HERMES)])
    async with serving(up):
        _, url = await lynkr(write_pipeline(PIPE % ("ollama", up.url, "")))
        chat_tools = [{"type": "function", "function": {"name": "Read", "parameters": TOOLS[0]["input_schema"]}}]
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions", json={
                    "model": "m", "tools": chat_tools, "messages": [{"role": "user", "content": "read a.py"}]}) as r:
                chat = await r.json()
            async with s.post(url + "/v1/responses", json={
                    "model": "m", "input": "read a.py",
                    "tools": [{"type": "function", "name": "Read", "parameters": TOOLS[0]["input_schema"]}]}) as r:
                resp = await r.json()
    msg = chat["choices"][0]["message"]
    assert chat["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["tool_calls"][0]["function"]["name"] == "Read"
    assert orjson.loads(msg["tool_calls"][0]["function"]["arguments"]) == {"file_path": "a.py", "limit": 20}
    calls = [i for i in resp["output"] if i["type"] == "function_call"]
    assert calls and calls[0]["name"] == "Read" and orjson.loads(calls[0]["arguments"])["file_path"] == "a.py"


@pytest.mark.parametrize("stream", [False, True])
async def test_hallucinated_call_is_dropped_with_a_notice_and_counted(stream, write_pipeline, lynkr):
    """A call to a tool the client never offered is not sent as a call: the client sees the prose
    and a one-line notice, and /metrics counts it under its reason."""
    text = 'Searching.\n<tool_call>\n{"name": "web_search", "arguments": {"q": "x"}}\n</tool_call>'
    up = OllamaDouble([Answer(text=text)])
    async with serving(up):
        _, url = await lynkr(write_pipeline(PIPE % ("ollama", up.url, "")))
        async with aiohttp.ClientSession() as s:
            blocks, stop = await anthropic_blocks(s, url, stream)
            async with s.get(url + "/metrics") as r:
                m = parse(await r.text())
    assert [b["type"] for b in blocks] == ["text"] and stop == "end_turn"
    assert blocks[0]["text"] == "Searching.\n\n[tool call not sent: no tool named `web_search` was offered]"
    assert total(m, "lynkr_text_tool_calls_total", provider="up", outcome="undeclared") == 1


@pytest.mark.parametrize("extra,recovered", [("", False), (", text_tool_calls: on", True)])
async def test_hosted_openai_is_left_alone_unless_on(extra, recovered, write_pipeline, lynkr):
    """`auto` leaves a hosted OpenAI-compatible API's text as it is; `on` recovers calls there too."""
    up = OpenAIUpstream([{"type": "text", "text": HERMES}])
    runner, up_url = await start_app(up.app())
    try:
        _, url = await lynkr(write_pipeline(PIPE % ("openai", up_url + "/v1", ", api_key: k" + extra)))
        async with aiohttp.ClientSession() as s:
            blocks, _ = await anthropic_blocks(s, url, True)
    finally:
        await runner.cleanup()
    if recovered:
        assert [b["type"] for b in blocks] == ["text", "tool_use"]
    else:
        assert [b["type"] for b in blocks] == ["text"] and blocks[0]["text"] == HERMES


def test_llamacpp_and_lmstudio_flavours_default_on():
    """auto is on for the llama.cpp and LM Studio flavours and Ollama, off for a hosted API."""
    from lynkr.providers import provider_class
    openai = provider_class("openai")
    assert openai("a", {"kind": "openai", "base_url": "http://localhost:8080/v1"}).text_tool_calls
    assert openai("b", {"kind": "openai", "base_url": "http://127.0.0.1:1234/v1"}).text_tool_calls
    assert openai("c", {"kind": "openai", "base_url": "http://gpu-box:9000/v1", "flavor": "llamacpp"}).text_tool_calls
    assert not openai("d", {"kind": "openai", "base_url": "https://openrouter.ai/api/v1", "api_key": "k"}).text_tool_calls
    assert not provider_class("ollama")("e", {"kind": "ollama", "base_url": "http://x", "text_tool_calls": False}).text_tool_calls


async def test_bad_option_value_is_a_config_error(write_pipeline, lynkr):
    """A misspelt mode is refused at load with the file and the option named."""
    with pytest.raises(ConfigError) as e:
        await lynkr(write_pipeline(PIPE % ("ollama", "http://127.0.0.1:9", ", text_tool_calls: always")))
    assert "text_tool_calls" in str(e.value)


async def test_plain_prose_is_forwarded_before_the_upstream_sends_the_rest(write_pipeline, lynkr):
    """With recovery on, the first text of an answer with no call-like text reaches the client
    while the upstream is still holding the rest back (it only continues once the client saw it)."""
    gate = asyncio.Event()

    async def chat(request):
        b = await request.json()
        resp = web.StreamResponse(headers={"content-type": "application/x-ndjson"})
        await resp.prepare(request)
        line = {"model": b["model"], "message": {"role": "assistant", "content": "Hello there, "}, "done": False}
        await resp.write(orjson.dumps(line) + b"\n")
        await gate.wait()
        line["message"]["content"] = "all done."
        await resp.write(orjson.dumps(line) + b"\n")
        await resp.write(orjson.dumps({"model": b["model"], "message": {"role": "assistant", "content": ""},
                                       "done": True, "done_reason": "stop"}) + b"\n")
        return resp

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    runner, up_url = await start_app(app)
    try:
        _, url = await lynkr(write_pipeline(PIPE % ("ollama", up_url, "")))
        async def read() -> str:
            seen = ""
            async with aiohttp.ClientSession() as s:
                async with s.post(url + "/v1/messages", json=body(True)) as r:
                    async for raw in r.content:
                        line = raw.decode()
                        if line.startswith("data: ") and '"text_delta"' in line:
                            seen += orjson.loads(line[6:])["delta"]["text"]
                            gate.set()
            return seen
        # A deadlock guard, not a timing check: held-back text would leave both sides waiting.
        rest = await asyncio.wait_for(read(), 60)
    finally:
        gate.set()
        await runner.cleanup()
    assert rest == "Hello there, all done."
