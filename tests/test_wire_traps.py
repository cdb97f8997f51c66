"""One test per trap in ../shared/research/protocols.md §9 that applies to /v1/messages,
/v1/chat/completions and /v1/responses (numbers in the test names), plus bad client input and
same-protocol fidelity through the running proxy."""
import asyncio
import gzip
import json

import aiohttp
import orjson
import pytest
from aiohttp import web

from lynkr.wire import anthropic, openai_chat, openai_responses
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE, for_anthropic_upstream, short_name
from lynkr.wire.sse import iter_sse
from tests.conftest import FIXTURES, start_app
from tests.helpers.anthropic_upstream import sse
from tests.helpers.render_http import rendered
from tests.helpers.wire_upstreams import OpenAIUpstream, ScriptedAnthropic, step_to_message

PIPE_A = """
version: 1
server: {shed: {enabled: false}, ping_interval_s: 0.05, max_body_bytes: 200000}
providers:
  up: {kind: anthropic, base_url: "%s", strip_billing: false}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""
PIPE_O = """
version: 1
server: {shed: {enabled: false}}
providers:
  up: {kind: openai, base_url: "%s/v1", api_key: test}
stages:
  - {id: call, uses: provider_call, with: {to: "up:gpt-test"}}
"""
TOOL = {"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}


async def serve_upstream(up):
    runner, url = await start_app(up.app())
    up.url = url
    return runner, url


async def sse_events(resp) -> list[tuple[str | None, dict | str]]:
    out = []
    async for name, data in iter_sse(resp.content):
        out.append((name, data.decode() if data == b"[DONE]" else orjson.loads(data)))
    return out


async def aiter(items):
    for i in items:
        yield i


async def collect_events(gen):
    return [e async for e in gen]


def check_anthropic_grammar(events: list[dict]):
    """§9.1–4: one message_start first, blocks opened and closed one at a time in index order,
    message_delta with usage.output_tokens, message_stop last."""
    types = [e["type"] for e in events if e["type"] != "ping"]
    assert types[0] == "message_start" and types.count("message_start") == 1
    assert types[-1] == "message_stop" and types[-2] == "message_delta"
    open_idx, expected = None, 0
    for e in events:
        if e["type"] == "content_block_start":
            assert open_idx is None and e["index"] == expected
            open_idx = e["index"]
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_idx
        elif e["type"] == "content_block_stop":
            assert e["index"] == open_idx
            open_idx, expected = None, expected + 1
        elif e["type"] == "message_delta":
            assert open_idx is None
            assert isinstance(e["usage"]["output_tokens"], int)


# ---- Anthropic clients --------------------------------------------------------------------

@pytest.fixture
async def anth(write_pipeline, lynkr):
    up = ScriptedAnthropic([[{"type": "text", "text": "Running it."}, {"type": "tool", "name": "Bash", "input": {"command": "ls"}}]])
    runner, url = await serve_upstream(up)
    _, proxy = await lynkr(write_pipeline(PIPE_A % url))
    yield proxy, up
    await runner.cleanup()


async def test_trap_1_2_3_8_9_event_lines_usage_order_stream_from_body_query_and_unknown_fields(anth):
    proxy, up = anth
    body = {"model": "claude-x", "max_tokens": 50, "stream": True, "tools": [TOOL],
            "context_management": {"edits": []}, "output_config": {"effort": "low"}, "thinking": {"type": "adaptive"},
            "tags": ["x"], "messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "mid"}]}
    headers = {"accept": "application/json", "x-stainless-lang": "js", "x-app": "cli", "anthropic-beta": "whatever-2099"}
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + "/v1/messages?beta=true", json=body, headers=headers) as r:
            assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
            raw = await r.read()
    assert raw.count(b"event: ") == raw.count(b"data: ")          # every event is named (trap 1)
    events = [orjson.loads(d) for n, d in [(None, line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]]
    check_anthropic_grammar(events)
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    sent = up.requests[-1]
    assert sent["context_management"] == {"edits": []} and sent["output_config"] == {"effort": "low"}
    assert sent["tags"] == ["x"] and sent["messages"][1]["role"] == "system"


async def test_same_protocol_fidelity_fixture_bodies_and_sse_event_for_event(anth):
    """Every field of the Claude Code fixtures reaches an Anthropic upstream, and the
    upstream's SSE reaches the client byte for byte (pings aside)."""
    proxy, up = anth
    paths = sorted((FIXTURES / "claude-code").glob("*/req_*.json"))
    if not paths:
        pytest.skip("no Claude Code fixtures")
    async with aiohttp.ClientSession() as s:
        for p in paths:
            fx = json.loads(p.read_text())
            headers = {k: v for k, v in fx["headers"].items() if k.lower() not in ("host", "content-length", "connection")}
            async with s.post(proxy + fx["path"], data=orjson.dumps(fx["body"]), headers=headers) as r:
                got = await r.read()
            sent = up.requests[-1]
            from tests.test_wire_contract import anthropic_equivalent
            assert anthropic_equivalent(sent) == anthropic_equivalent(fx["body"])
            assert up.headers[-1].get("anthropic-beta") == fx["headers"]["anthropic-beta"]
            expected = b"".join(sse(up.last_message))
            assert got.replace(b"event: ping\ndata: {\"type\":\"ping\"}\n\n", b"") == expected.replace(
                b"event: ping\ndata: {\"type\":\"ping\"}\n\n", b"")


async def test_trap_7_non_streaming_and_count_tokens_counts_tools(anth):
    proxy, up = anth
    async with aiohttp.ClientSession() as s:
        body = {"model": "claude-x", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}], "tools": [TOOL]}
        async with s.post(proxy + "/v1/messages", json=body) as r:
            m = await r.json()
            assert m["stop_reason"] == "tool_use" and m["content"][1]["input"] == {"command": "ls"}
        counts = []
        for extra in ({}, {"tools": [TOOL] * 5}, {"tools": [TOOL] * 5, "system": "long system " * 100}):
            b = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], **extra}
            async with s.post(proxy + "/v1/messages/count_tokens?beta=true", json=b) as r:
                assert r.status == 200
                counts.append((await r.json())["input_tokens"])
    assert 0 < counts[0] < counts[1] < counts[2]


async def test_trap_24_gzip_body(anth):
    proxy, up = anth
    body = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "zipped"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + "/v1/messages", data=gzip.compress(orjson.dumps(body)),
                          headers={"content-encoding": "gzip", "content-type": "application/json"}) as r:
            assert r.status == 200
    assert up.requests[-1]["messages"][0]["content"][0]["text"] == "zipped"


async def test_ping_while_upstream_is_silent(write_pipeline, lynkr):
    class Slow(ScriptedAnthropic):
        async def messages(self, request):
            await request.read()
            msg = step_to_message({"type": "text", "text": "slow answer"})
            chunks = sse(msg)
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(chunks[0])
            await asyncio.sleep(0.4)            # thinking, silently
            for c in chunks[1:]:
                await resp.write(c)
            await resp.write_eof()
            return resp
    up = Slow([])
    runner, url = await serve_upstream(up)
    try:
        _, proxy = await lynkr(write_pipeline(PIPE_A % url))
        async with aiohttp.ClientSession() as s:
            async with s.post(proxy + "/v1/messages", json={"model": "c", "max_tokens": 5, "stream": True,
                                                            "messages": [{"role": "user", "content": "hi"}]}) as r:
                events = await sse_events(r)
    finally:
        await runner.cleanup()
    names = [n for n, _ in events]
    first_delta = names.index("content_block_start")
    assert names[1:first_delta].count("ping") >= 3                 # our pings, during the silence
    check_anthropic_grammar([d for _, d in events])


async def test_trap_16_errors_in_the_anthropic_envelope(anth):
    proxy, up = anth
    up.fail_next.append((429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}))
    up.fail_next.append((429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}))
    up.fail_next.append((429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}))
    up.fail_next.append((429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}))
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + "/v1/messages", json={"model": "c", "max_tokens": 5,
                                                        "messages": [{"role": "user", "content": "hi"}]}) as r:
            body = await r.json()
            assert r.status == 429 and body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
            assert r.headers["x-should-retry"] == "true"
        up.fail_next.clear()
        up.fail_next.append((400, {"type": "error", "error": {"type": "invalid_request_error",
                                                              "message": "prompt is too long: 250000 tokens > 200000 maximum"}}))
        async with s.post(proxy + "/v1/messages", json={"model": "c", "max_tokens": 5,
                                                        "messages": [{"role": "user", "content": "hi"}]}) as r:
            body = await r.json()
            assert r.status == 400 and body["error"]["message"].startswith("prompt is too long")   # verbatim
            assert r.headers["x-should-retry"] == "false"


async def test_trap_16_mid_stream_error_is_an_error_event():
    from lynkr.errors import ProxyError
    from lynkr.exchange import Exchange, Response

    async def broken():
        yield {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "content": [],
                                                    "model": "c", "usage": {"input_tokens": 1, "output_tokens": 0}}}
        raise ProxyError(529, "Overloaded")
    x = Exchange.new("anthropic", {"messages": [], "stream": True})
    x.response = Response(events=broken())
    _, events = await rendered(x, anthropic, sse_events)
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "overloaded_error"


# ---- OpenAI upstream conversions (traps 4, 5, 6, 12, 17) --------------------------------

def chunk(delta=None, finish=None, **kw):
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **kw}


async def test_trap_4_interleaved_parallel_calls_become_sequential_blocks():
    chunks = [chunk({"role": "assistant"}),
              chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x":'}}]}),
              chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"y":2}'}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '1}'}}]}),
              chunk({}, "tool_calls"), {"id": "c1", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3}}]
    events = await collect_events(openai_chat.events_from_openai(aiter(chunks)))
    check_anthropic_grammar(events)
    from lynkr.wire.events import MessageAccumulator
    acc = MessageAccumulator()
    for e in events:
        acc.feed(e)
    assert [(b["id"], b["input"]) for b in acc.message["content"]] == [("a", {"x": 1}), ("b", {"y": 2})]
    assert acc.message["usage"] == {"input_tokens": 10, "output_tokens": 3}


async def test_trap_5_tool_called_but_upstream_says_stop():
    chunks = [chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
              chunk({}, "stop")]
    events = await collect_events(openai_chat.events_from_openai(aiter(chunks)))
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    msg = openai_chat.message_from_openai({"choices": [{"message": {"tool_calls": [
        {"id": "a", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "stop"}]})
    assert msg["stop_reason"] == "tool_use"


async def test_trap_6_no_arg_tool_gets_braces_and_cumulative_snapshots_are_not_duplicated():
    chunks = [chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "now"}}]}), chunk({}, "tool_calls")]
    events = await collect_events(openai_chat.events_from_openai(aiter(chunks)))
    parts = [e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(parts) == "{}"
    snap = [chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"a":'}}]}),
            chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": '{"a":1}'}}]}),
            chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": '{"a":1}'}}]}), chunk({}, "tool_calls")]
    events = await collect_events(openai_chat.events_from_openai(aiter(snap)))
    assert "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta") == '{"a":1}'


async def test_trap_12_reasoning_becomes_thinking_with_placeholder_never_sent_to_claude():
    chunks = [chunk({"reasoning_content": "hmm"}), chunk({"content": "answer"}), chunk({}, "stop")]
    events = await collect_events(openai_chat.events_from_openai(aiter(chunks)))
    check_anthropic_grammar(events)
    sig = [e["delta"]["signature"] for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == "signature_delta"]
    assert sig == [SYNTHETIC_SIGNATURE]
    history = {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]},
                            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": SYNTHETIC_SIGNATURE},
                                                              {"type": "text", "text": "answer"}]}]}
    assert [b["type"] for b in for_anthropic_upstream(history, "openai_chat")["messages"][1]["content"]] == ["text"]
    # and sent back as reasoning_content to an OpenAI-compatible upstream (DeepSeek/Kimi need it)
    out = openai_chat.from_canonical(history, "deepseek-reasoner")
    assert out["messages"][1]["reasoning_content"] == "hmm"


async def test_trap_17_error_chunk_after_200_is_raised():
    from lynkr.errors import ProxyError
    with pytest.raises(ProxyError):
        await collect_events(openai_chat.events_from_openai(aiter([chunk({"content": "a"}), {"error": {"message": "boom", "code": 502}}])))
    # empty-choices (Azure filter) chunks and content+finish in one chunk
    events = await collect_events(openai_chat.events_from_openai(aiter(
        [{"id": "x", "choices": [], "prompt_filter_results": []}, chunk({"content": "all at once"}, "stop")])))
    check_anthropic_grammar(events)
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_trap_10_billing_block_stripped_for_openai_upstreams_only():
    c = {"system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=1; cch=abcde;"},
                    {"type": "text", "text": "You are Claude Code."}],
         "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert "billing" not in str(openai_chat.from_canonical(c, "m")["messages"])
    assert "billing" not in str(openai_responses.from_canonical(c, "m"))
    assert for_anthropic_upstream(c, "anthropic") is c


def test_trap_13_tool_result_images_move_to_a_user_message():
    c = {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                          {"type": "text", "text": "here"},
                          {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]}]}
    msgs = openai_chat.from_canonical(c, "m")["messages"]
    assert msgs[1] == {"role": "tool", "tool_call_id": "t1", "content": "here"}
    assert msgs[2]["role"] == "user" and msgs[2]["content"][0]["image_url"]["url"] == "data:image/png;base64,AAAA"


def test_trap_15_usage_semantics():
    from lynkr.wire.canonical import usage_from_openai, usage_to_openai, usage_to_responses
    a = usage_from_openai({"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 60}})
    assert a == {"input_tokens": 40, "output_tokens": 5, "cache_read_input_tokens": 60}
    assert usage_to_openai(a)["prompt_tokens"] == 100
    r = usage_to_responses(a)
    assert r["input_tokens"] == 100 and r["total_tokens"] == 105 and all(isinstance(r[k], int) for k in ("input_tokens", "output_tokens", "total_tokens"))


def test_trap_22_23_long_tool_names_map_back_and_schema_is_portable():
    long = "mcp__some_server_with_a_long_name__" + "do_something_really_specific_" * 2
    c = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
         "tools": [{"name": long, "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}}]}
    body = openai_chat.from_canonical(c, "m")
    fn = body["tools"][0]["function"]
    assert len(fn["name"]) <= 64 and fn["name"] == short_name(long) and "$schema" not in fn["parameters"]
    msg = openai_chat.message_from_openai({"choices": [{"message": {"tool_calls": [
        {"id": "a", "function": {"name": fn["name"], "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}, c)
    assert msg["content"][0]["name"] == long


# ---- OpenAI chat clients ----------------------------------------------------------------

@pytest.fixture
async def chat_proxy(write_pipeline, lynkr):
    up = ScriptedAnthropic([[{"type": "tool", "name": "get_time", "input": {}},
                             {"type": "tool", "name": "Bash", "input": {"command": "date"}}]], agent_tool="Bash")
    runner, url = await serve_upstream(up)
    _, proxy = await lynkr(write_pipeline(PIPE_A % url))
    yield proxy, up
    await runner.cleanup()


async def test_chat_stream_done_usage_and_parallel_calls_by_index(chat_proxy):
    proxy, up = chat_proxy
    body = {"model": "gpt-x", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "time?"}],
            "tools": [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
                      {"type": "function", "function": {"name": "Bash", "parameters": TOOL["input_schema"]}}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + "/v1/chat/completions", json=body) as r:
            raw = await r.read()
    assert b"event:" not in raw
    lines = [l[6:] for l in raw.split(b"\n") if l.startswith(b"data: ")]
    assert lines[-1] == b"[DONE]"
    chunks = [orjson.loads(l) for l in lines[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    calls = {}
    for c in chunks:
        for ch in c["choices"]:
            for tc in ch["delta"].get("tool_calls") or ():
                calls.setdefault(tc["index"], "")
                calls[tc["index"]] += tc["function"].get("arguments", "")
    assert calls == {0: "{}", 1: '{"command":"date"}'}
    # never inject tools the client did not send
    assert [t["name"] for t in up.requests[-1]["tools"]] == ["get_time", "Bash"]


async def test_chat_without_tools_sends_none_upstream(chat_proxy):
    proxy, up = chat_proxy
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 200
            data = await r.json()
    assert "tools" not in up.requests[-1]
    assert data["object"] == "chat.completion" and data["choices"][0]["message"]["content"] == "ok"


async def test_trap_21_cursor_responses_shaped_body_on_chat_completions(chat_proxy):
    proxy, up = chat_proxy
    body = {"model": "m", "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            "tools": [{"type": "function", "name": "get_time", "parameters": {"type": "object"}}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + "/v1/chat/completions", json=body) as r:
            assert r.status == 200
            data = await r.json()
    assert data["object"] == "chat.completion"
    assert up.requests[-1]["messages"][0]["content"][0]["text"] == "hi"


# ---- Responses clients (traps 18, 19, 20, 25) -------------------------------------------

@pytest.fixture
async def resp_proxy(write_pipeline, lynkr):
    up = ScriptedAnthropic([[{"type": "text", "text": "Patching."},
                             {"type": "tool", "name": "apply_patch", "input": {"input": "*** Begin Patch\n*** End Patch"}}],
                            {"type": "text", "text": "Done."}], agent_tool="apply_patch")
    runner, url = await serve_upstream(up)
    _, proxy = await lynkr(write_pipeline(PIPE_A % url))
    yield proxy, up
    await runner.cleanup()


CUSTOM = {"type": "custom", "name": "apply_patch", "description": "patch files",
          "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}


async def test_trap_18_19_responses_event_order_custom_tools_and_integer_usage(resp_proxy):
    proxy, up = resp_proxy
    body = {"model": "gpt-5-codex", "stream": True, "store": False, "instructions": "be codex",
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]}],
            "tools": [CUSTOM, {"type": "web_search"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + "/v1/responses", json=body) as r:
            events = await sse_events(r)
    assert all(n == d["type"] for n, d in events if n != "ping")
    data = [d for n, d in events]
    types = [d["type"] for d in data]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert "[DONE]" not in str(types)
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    added = set()
    for d in data:       # output_item.added before any delta of that item
        if d["type"] == "response.output_item.added":
            added.add(d["output_index"])
        elif ".delta" in d["type"]:
            assert d["output_index"] in added
    done = [d["item"] for d in data if d["type"] == "response.output_item.done"]
    assert done[0]["type"] == "message" and done[0]["content"][0]["text"] == "Patching."
    assert done[1]["type"] == "custom_tool_call" and done[1]["input"] == "*** Begin Patch\n*** End Patch"
    usage = data[-1]["response"]["usage"]
    assert all(isinstance(usage[k], int) for k in ("input_tokens", "output_tokens", "total_tokens"))
    # upstream got the custom tool as a one-string function and no web_search (Anthropic has none)
    sent = up.requests[-1]
    assert [t["name"] for t in sent["tools"]] == ["apply_patch"]
    assert sent["tools"][0]["input_schema"]["properties"]["input"]["type"] == "string"
    assert sent["system"][0]["text"] == "be codex"
    # the next turn carries the custom call and its output back as tool_use / tool_result
    body["input"] += [done[1] | {"id": None}, {"type": "custom_tool_call_output", "call_id": done[1]["call_id"], "output": "ok"}]
    body["input"][-2].pop("id")
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + "/v1/responses", json={**body, "stream": False}) as r:
            final = await r.json()
    assert final["output"][0]["content"][0]["text"] == "Done." and final["status"] == "completed"
    msgs = up.requests[-1]["messages"]
    assert msgs[1]["content"][0]["input"] == {"input": "*** Begin Patch\n*** End Patch"}
    assert msgs[2]["content"][0]["tool_use_id"] == done[1]["call_id"]


async def test_trap_20_models_shapes(resp_proxy):
    proxy, _ = resp_proxy
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy + "/v1/models?client_version=0.169.0") as r:
            assert await r.json() == {"models": []}
        async with s.get(proxy + "/v1/models", headers={"authorization": "Bearer x"}) as r:
            d = await r.json()
            assert d["object"] == "list"
        async with s.get(proxy + "/v1/models", headers={"anthropic-version": "2023-06-01", "x-api-key": "k"}) as r:
            d = await r.json()
            assert "has_more" in d and isinstance(d["data"], list)


async def test_trap_25_previous_response_id_is_a_clear_400(resp_proxy):
    proxy, _ = resp_proxy
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + "/v1/responses", json={"model": "m", "input": "hi", "previous_response_id": "resp_1"}) as r:
            assert r.status == 400
            err = (await r.json())["error"]
    assert err["code"] == "previous_response_not_found" and "previous_response_id" in err["message"]


async def test_responses_mid_stream_failure_is_response_failed():
    from lynkr.errors import ProxyError
    from lynkr.exchange import Exchange, Response

    async def broken():
        yield {"type": "message_start", "message": {"id": "m", "content": [], "usage": {}}}
        yield {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        raise ProxyError(529, "Overloaded")
    x = Exchange.new("openai_responses", {"messages": [], "stream": True}, original={"model": "gpt", "input": "x"})
    x.response = Response(events=broken())
    _, events = await rendered(x, openai_responses, sse_events)
    assert events[-1][1]["type"] == "response.failed"
    assert events[-1][1]["response"]["error"]["code"] == "server_is_overloaded"


# ---- bad client input: a 4xx in the client's own shape, never a traceback ---------------

BAD = [
    (b"{not json", 400, "not valid JSON"),
    (b'{"model": "m"}', 400, "required"),
    (b'{"model": 5, "messages": [], "input": []}', 400, "model"),
    (b'[1, 2]', 400, "JSON object"),
]


@pytest.mark.parametrize("path,shape", [("/v1/messages", "anthropic"), ("/v1/chat/completions", "openai"),
                                        ("/v1/responses", "openai")])
@pytest.mark.parametrize("raw,status,words", BAD)
async def test_bad_input_in_the_clients_shape(anth, path, shape, raw, status, words):
    proxy, _ = anth
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + path, data=raw, headers={"content-type": "application/json"}) as r:
            assert r.status == status
            body = await r.json()
    if shape == "anthropic":
        assert body["type"] == "error" and words.lower() in body["error"]["message"].lower()
    else:
        assert words.lower() in body["error"]["message"].lower() and "type" in body["error"]
    assert "Traceback" not in str(body)


@pytest.mark.parametrize("path,field", [("/v1/messages", "messages"), ("/v1/chat/completions", "messages"),
                                        ("/v1/responses", "input")])
async def test_wrong_types_and_oversized_bodies(anth, path, field):
    proxy, _ = anth
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy + path, json={"model": "m", field: "x" if field == "messages" else 5}) as r:
            assert r.status == 400
            assert field in str(await r.json())
        big = {"model": "m", field: [{"role": "user", "content": "x" * 300_000}]}
        async with s.post(proxy + path, json=big) as r:
            assert r.status == 413
            assert "limit" in str(await r.json())


async def test_trap_4_5_quirky_openai_upstream_to_the_anthropic_sdk(write_pipeline, lynkr):
    """An OpenAI-compatible upstream that interleaves two parallel calls and then says
    finish_reason "stop": the anthropic SDK still gets two whole tool_use blocks and tool_use."""
    import anthropic as anthropic_sdk
    up = OpenAIUpstream([[{"type": "text", "text": "Both at once."},
                          {"type": "tool", "name": "Bash", "input": {"command": "ls -la /tmp"}},
                          {"type": "tool", "name": "Bash", "input": {"command": "date"}}]],
                        interleave=True, finish_on_tools="stop", chunk=3, reasoning="Two commands.")
    runner, url = await serve_upstream(up)
    try:
        _, proxy = await lynkr(write_pipeline(PIPE_O % url))
        client = anthropic_sdk.AsyncAnthropic(base_url=proxy, api_key="x", max_retries=0)
        async with client.messages.stream(model="c", max_tokens=100, tools=[TOOL],
                                          messages=[{"role": "user", "content": "go"}]) as s:
            final = await s.get_final_message()
    finally:
        await runner.cleanup()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].signature == SYNTHETIC_SIGNATURE
    assert [b.input for b in final.content[2:]] == [{"command": "ls -la /tmp"}, {"command": "date"}]
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens == 100 and final.usage.cache_read_input_tokens == 20


async def test_trap_6_call_whose_name_arrives_late_is_buffered_not_nameless():
    chunks = [chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": '{"k":'}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"v"}'}}]}), chunk({}, "tool_calls")]
    events = await collect_events(openai_chat.events_from_openai(aiter(chunks)))
    check_anthropic_grammar(events)
    start = next(e for e in events if e["type"] == "content_block_start")
    assert start["content_block"]["name"] == "f"
    assert "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta") == '{"k":"v"}'
