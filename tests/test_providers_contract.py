"""Contract tests: each provider kind against a double that validates the upstream request by that
provider's rules and answers in its real wire format (streaming and not, tool calls, reasoning),
and a recorded Claude Code tool session replayed through every kind with its tool_use/tool_result
pairs intact upstream."""
from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES
from tests.helpers.provider_doubles import Answer, provider_yaml, script_from_fixture
from tests.helpers.provider_harness import check_stream, make_double, pipeline, post, serve_double

KINDS = ["ollama", "openai", "azure_openai", "bedrock", "gemini", "vertex", "anthropic"]
REASONING = {"ollama", "openai", "azure_openai", "bedrock", "gemini", "vertex"}   # the double emits reasoning

TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                           "additionalProperties": False,
                           "properties": {"city": {"type": "string", "format": "hostname"},
                                          "unit": {"type": ["string", "null"], "enum": ["c", "f", None]}},
                           "required": ["city"]}},
         {"name": "mcp__very_long_server_name_for_testing__and_an_even_longer_tool_name_beyond_64",
          "description": "an MCP tool whose name is over 64 characters",
          "input_schema": {"type": "object", "properties": {}}}]


@pytest.fixture
async def runners():
    rs = []
    yield rs
    for r in rs:
        await r.cleanup()


async def _lynkr_for(kind, double, runners, lynkr, write_pipeline, models=""):
    url = await serve_double(double, runners)
    p = write_pipeline(pipeline(provider_yaml(kind, url, "up"), "  - {id: call, uses: provider_call, with: {to: 'up:model-x'}}\n",
                                models))
    _engine, base = await lynkr(p)
    return base


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", KINDS)
async def test_tool_call_round_trip(kind, stream, runners, lynkr, write_pipeline):
    answer = Answer(text="Let me check.", tools=[("get_weather", {"city": "Paris"})],
                    thinking="The user wants weather." if kind in REASONING else None)
    double = make_double(kind, [answer])
    base = await _lynkr_for(kind, double, runners, lynkr, write_pipeline)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 512, "stream": stream, "tools": TOOLS,
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328; cch=abc;"},
                       {"type": "text", "text": "You are helpful."}],
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    status, headers, out = await post(base, body)
    assert double.problems == []
    assert status == 200, out
    msg = check_stream(out) if stream else out
    assert msg["stop_reason"] == "tool_use"
    tool = [b for b in msg["content"] if b["type"] == "tool_use"]
    assert len(tool) == 1 and tool[0]["name"] == "get_weather" and tool[0]["input"] == {"city": "Paris"}
    assert any(b["type"] == "text" and "check" in b["text"] for b in msg["content"])
    if kind in REASONING:
        assert any(b["type"] == "thinking" and "weather" in b["thinking"] for b in msg["content"])
    assert msg["usage"]["output_tokens"] > 0
    assert headers["x-lynkr-provider"] == "up" and headers["x-lynkr-model"] == "model-x"
    assert headers["x-lynkr-request-id"]
    up = double.requests[0]
    if kind != "anthropic":
        assert "x-anthropic-billing-header" not in json.dumps(up)
    if kind == "ollama":
        assert up["options"]["num_ctx"] >= 32768


@pytest.mark.parametrize("kind", KINDS)
async def test_text_answer_non_tool(kind, runners, lynkr, write_pipeline):
    double = make_double(kind, [Answer(text="Plain answer here.")])
    base = await _lynkr_for(kind, double, runners, lynkr, write_pipeline)
    status, _h, out = await post(base, {"model": "m", "max_tokens": 64, "stream": True,
                                        "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200 and double.problems == []
    msg = check_stream(out)
    assert msg["stop_reason"] == "end_turn"
    assert "".join(b.get("text", "") for b in msg["content"]) == "Plain answer here."


def _fixture_session():
    d = FIXTURES / "claude-code" / "fix-negative-stock"
    if not d.is_dir():
        pytest.skip("shared fixtures not present")
    req = json.loads((d / "req_004.json").read_text())["body"]
    script = script_from_fixture(json.loads((d / "upstream_script.json").read_text()))
    return req, script


def _pairs(kind: str, up: dict) -> tuple[list, list]:
    """Tool call ids and tool result ids as the upstream received them."""
    calls, results = [], []
    if kind in ("ollama", "openai", "azure_openai"):
        for m in up["messages"]:
            calls += [tc["id"] for tc in m.get("tool_calls") or []]
            if m["role"] == "tool":
                results.append(m["tool_call_id"])
    elif kind == "bedrock":
        for m in up["messages"]:
            calls += [c["toolUse"]["toolUseId"] for c in m["content"] if "toolUse" in c]
            results += [c["toolResult"]["toolUseId"] for c in m["content"] if "toolResult" in c]
    elif kind in ("gemini", "vertex"):
        for c in up["contents"]:
            calls += [p["functionCall"]["name"] for p in c["parts"] if "functionCall" in p]
            results += [p["functionResponse"]["name"] for p in c["parts"] if "functionResponse" in p]
    else:
        for m in up["messages"]:
            calls += [b["id"] for b in m["content"] if b.get("type") == "tool_use"]
            results += [b["tool_use_id"] for b in m["content"] if b.get("type") == "tool_result"]
    return calls, results


@pytest.mark.parametrize("kind", KINDS)
async def test_claude_code_session_replay(kind, runners, lynkr, write_pipeline):
    """Claude Code's 5th request of a real session (4 tool round trips, 12 tools, a mid-conversation
    system turn, thinking config, context_management…) through each kind; the model name is mapped
    by the `models:` table."""
    req, script = _fixture_session()
    double = make_double(kind, script[4:])
    url = await serve_double(double, runners)
    p = write_pipeline(pipeline(provider_yaml(kind, url, "up"), "  - {id: call, uses: provider_call}\n",
                                models="  'claude-*': {route: 'up:model-x'}\n"))
    _e, base = await lynkr(p)
    status, headers, out = await post(base, req)
    assert double.problems == []
    assert status == 200, out
    msg = check_stream(out) if req.get("stream") else out
    assert msg["stop_reason"] == "end_turn"
    assert "Store.remove" in "".join(b.get("text", "") for b in msg["content"])
    calls, results = _pairs(kind, double.requests[0])
    assert len(calls) == 4 and len(results) == 4
    if kind not in ("gemini", "vertex"):
        assert calls == results == [f"toolu_{i:04d}" for i in range(4)]
    assert headers["x-lynkr-model"] == "model-x"


async def test_gemini_thought_signature_passed_back(runners, lynkr, write_pipeline):
    """Gemini 3 rejects a replayed function call without its thoughtSignature; it travels through
    the client as a `gemini:`-prefixed thinking signature and comes back byte-for-byte."""
    double = make_double("gemini", [Answer(text=None, tools=[("get_weather", {"city": "Oslo"})]), Answer(text="Cold.")])
    base = await _lynkr_for("gemini", double, runners, lynkr, write_pipeline)
    first = {"model": "m", "max_tokens": 64, "stream": True, "tools": TOOLS[:1],
             "messages": [{"role": "user", "content": "Weather in Oslo?"}]}
    _s, _h, out = await post(base, first)
    msg = check_stream(out)
    sig_blocks = [b for b in msg["content"] if b["type"] == "thinking"]
    assert sig_blocks and sig_blocks[0]["signature"].startswith("gemini:")
    tool = next(b for b in msg["content"] if b["type"] == "tool_use")
    second = {**first, "messages": first["messages"] + [
        {"role": "assistant", "content": msg["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": "-3C"}]}]}
    status, _h, out = await post(base, second)
    assert double.problems == [], double.problems
    assert status == 200
    sent = [p for c in double.requests[1]["contents"] for p in c["parts"] if "functionCall" in p]
    assert sent[0]["thoughtSignature"] == sig_blocks[0]["signature"][len("gemini:"):]


async def test_deepseek_gets_reasoning_content_back(runners, lynkr, write_pipeline):
    double = make_double("openai", [Answer(text="done")], require_reasoning_back=True)
    url = await serve_double(double, runners)
    prov = f"  ds: {{kind: openai, flavor: deepseek, base_url: '{url}/v1', api_key: sk-test}}\n"
    p = write_pipeline(pipeline(prov, "  - {id: call, uses: provider_call, with: {to: 'ds:deepseek-reasoner'}}\n"))
    _e, base = await lynkr(p)
    body = {"model": "m", "max_tokens": 100000, "tools": TOOLS[:1], "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "need a tool", "signature": "x"},
                                          {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "20C"}]}]}
    status, _h, out = await post(base, body)
    assert status == 200, out
    assert double.problems == []
    assert double.requests[0]["max_tokens"] == 8192        # clamped to DeepSeek's limit
    assistant = [m for m in double.requests[0]["messages"] if m["role"] == "assistant"][0]
    assert assistant["reasoning_content"] == "need a tool"


async def test_long_tool_names_mapped_and_back(runners, lynkr, write_pipeline):
    long = TOOLS[1]["name"]
    for kind in ("openai", "bedrock", "gemini"):
        double = make_double(kind, [Answer(text=None, tools=[(None, {})])])
        # The double answers with the name it was given, whatever the adapter made of it.
        double.script = lambda body, k=kind: Answer(text=None, tools=[(_upstream_tool_names(k, body)[1], {})])
        base = await _lynkr_for(kind, double, runners, lynkr, write_pipeline)
        status, _h, out = await post(base, {"model": "m", "max_tokens": 64, "tools": TOOLS,
                                            "messages": [{"role": "user", "content": "go"}]})
        assert status == 200 and double.problems == [], (kind, double.problems)
        up_names = _upstream_tool_names(kind, double.requests[0])
        assert all(len(n) <= 64 for n in up_names)
        assert next(b for b in out["content"] if b["type"] == "tool_use")["name"] == long


def _upstream_tool_names(kind, body):
    if kind == "openai":
        return [t["function"]["name"] for t in body["tools"]]
    if kind == "bedrock":
        return [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]]
    return [d["name"] for d in body["tools"][0]["functionDeclarations"]]


async def test_bedrock_sigv4_and_stub_tool_config(runners, lynkr, write_pipeline):
    """SigV4 instead of a bearer key; history with tool blocks but no `tools` gets a stub toolConfig;
    consecutive user turns are merged; the model id is percent-encoded in the path."""
    double = make_double("bedrock", [Answer(text="ok")])
    url = await serve_double(double, runners)
    prov = (f"  br: {{kind: bedrock, base_url: '{url}', region: eu-west-1, access_key_id: AKIDEXAMPLE,"
            f" secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY}}\n")
    p = write_pipeline(pipeline(prov, "  - {id: call, uses: provider_call, with: {to: 'br:arn:aws:bedrock:eu-west-1:1:inference-profile/eu.anthropic.claude'}}\n"))
    _e, base = await lynkr(p)
    body = {"model": "m", "max_tokens": 64, "stream": True, "messages": [
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {"p": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": ""},
                                     {"type": "text", "text": "  "}]}]}
    status, _h, out = await post(base, body)
    assert status == 200 and double.problems == [], double.problems
    check_stream(out)
    assert double.headers[0]["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/bedrock/aws4_request" in double.headers[0]["Authorization"]
    assert "inference-profile%2Feu.anthropic.claude" in double.paths[0]


async def test_ollama_embed_and_tags(runners):
    from lynkr.providers.ollama import OllamaProvider

    double = make_double("ollama")
    url = await serve_double(double, runners)
    p = OllamaProvider("o", {"kind": "ollama", "base_url": url})
    try:
        assert await p.tags() == ["qwen2.5-coder:7b"]
        assert len(await p.embed(["a", "b"], "all-minilm")) == 2
    finally:
        await p.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_anthropic_sdk_reads_every_kind(kind, runners, lynkr, write_pipeline):
    """The official SDK as the oracle: its stream accumulator must build the same message."""
    import anthropic

    double = make_double(kind, [Answer(text="Reading it.", tools=[("Read", {"file_path": "/a.py"})],
                                       thinking="look first" if kind in REASONING else None)])
    base = await _lynkr_for(kind, double, runners, lynkr, write_pipeline)
    client = anthropic.AsyncAnthropic(base_url=base, api_key="sk-ant-client", max_retries=0)
    try:
        async with client.messages.stream(model="claude-sonnet-4-5", max_tokens=256, tools=TOOLS,
                                          messages=[{"role": "user", "content": "read /a.py"}]) as s:
            msg = await s.get_final_message()
    finally:
        await client.close()
    assert double.problems == []
    assert msg.stop_reason == "tool_use"
    tool = [b for b in msg.content if b.type == "tool_use"][0]
    assert tool.name == "Read" and tool.input == {"file_path": "/a.py"}
    if kind in REASONING:
        assert msg.content[0].type == "thinking" and msg.content[0].thinking == "look first"


async def test_gemini_signature_survives_a_client_that_drops_thinking(runners, lynkr, write_pipeline):
    """Claude Code keeps tool ids but not thinking blocks: the signature comes back by tool id."""
    double = make_double("gemini", [Answer(text=None, tools=[("get_weather", {"city": "Lima"})]), Answer(text="Mild.")])
    base = await _lynkr_for("gemini", double, runners, lynkr, write_pipeline)
    first = {"model": "m", "max_tokens": 64, "tools": TOOLS[:1], "messages": [{"role": "user", "content": "Lima?"}]}
    _s, _h, msg = await post(base, first)
    kept = [b for b in msg["content"] if b["type"] != "thinking"]
    tool = next(b for b in kept if b["type"] == "tool_use")
    second = {**first, "messages": first["messages"] + [
        {"role": "assistant", "content": kept},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": "18C"}]}]}
    status, _h, _out = await post(base, second)
    assert status == 200 and double.problems == [], double.problems


def test_gemini3_gets_the_documented_stand_in_when_the_signature_is_gone():
    from lynkr.providers.gemini import SKIP_SIGNATURE, to_gemini
    req = {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]},
                        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_from_elsewhere", "name": "Read", "input": {}}]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_from_elsewhere", "content": "x"}]}]}
    part = to_gemini(req, strict_signatures=True)[0]["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == SKIP_SIGNATURE
    assert "thoughtSignature" not in to_gemini(req)[0]["contents"][1]["parts"][0]
