"""Contract tests: every request in ../shared/fixtures parses, converts to each other protocol and
back without losing a tool call, a tool_result pairing, an image or a thinking signature; and a
request sent to an upstream of its own protocol round-trips to an equivalent body."""
import copy
import json
from pathlib import Path

import orjson
import pytest

from lynkr.wire import anthropic, openai_chat, openai_responses
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE, for_anthropic_upstream
from tests.conftest import FIXTURES

FIXTURE_FILES = sorted(Path(FIXTURES).glob("*/*/req_*.json"))
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

pytestmark = pytest.mark.skipif(not FIXTURE_FILES, reason=f"no fixtures under {FIXTURES}")


def load(path):
    return json.loads(Path(path).read_text())


def protocol_of(fixture: dict):
    path = fixture["path"].split("?")[0]
    return {"/v1/messages": anthropic, "/v1/responses": openai_responses,
            "/v1/chat/completions": openai_chat}[path]


def facts(canonical: dict) -> dict:
    """What must survive any conversion: tool calls (id, name, input), tool_result pairing
    (id → text), images, and thinking signatures."""
    calls, results, images, signatures = [], [], [], []
    for m in canonical["messages"]:
        content = m["content"] if isinstance(m["content"], list) else []
        for b in content:
            t = b.get("type")
            if t == "tool_use":
                calls.append((b["id"], b["name"], orjson.dumps(b["input"], option=orjson.OPT_SORT_KEYS)))
            elif t == "tool_result":
                c = b.get("content")
                text = c if isinstance(c, str) else "".join(x.get("text", "") for x in c or () if x.get("type") == "text")
                results.append((b["tool_use_id"], text.removeprefix("Error: ")))
                images += [x["source"]["data"] for x in (c if isinstance(c, list) else ()) if x.get("type") == "image"]
            elif t == "image":
                images.append(b["source"].get("data") or b["source"].get("url"))
            elif t == "thinking" and b.get("signature") not in (None, "", SYNTHETIC_SIGNATURE):
                signatures.append(b["signature"])
    return {"calls": calls, "results": results, "images": sorted(images), "signatures": signatures}


def enrich(canonical: dict) -> dict:
    """The fixtures have no images or thinking; add both where Claude Code would put them."""
    c = copy.deepcopy(canonical)
    msgs = c["messages"]
    first_user = next(m for m in msgs if m["role"] == "user")
    first_user["content"].append({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}})
    for m in msgs:
        if m["role"] == "assistant" and any(b.get("type") == "tool_use" for b in m["content"]):
            m["content"].insert(0, {"type": "thinking", "thinking": "I should look first.", "signature": "EqQBsig" + str(id(m))})
            break
    for m in msgs:
        if m["role"] == "user" and any(b.get("type") == "tool_result" for b in m["content"]):
            for b in m["content"]:
                if b.get("type") == "tool_result":
                    b["content"] = [{"type": "text", "text": "see picture"},
                                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]
                    break
            break
    return c


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_parses_and_converts_without_loss(path):
    fx = load(path)
    proto = protocol_of(fx)
    canonical = proto.to_canonical(fx["body"])
    assert canonical["messages"], "parsed to an empty conversation"
    for c in (canonical, enrich(canonical)):
        want = facts(c)
        # through OpenAI chat and back
        via_chat = openai_chat.to_canonical(openai_chat.from_canonical(c, "m"))
        got = facts(via_chat)
        assert got["calls"] == want["calls"]
        assert got["results"] == want["results"]
        assert got["images"] == want["images"]
        assert got["signatures"] == want["signatures"]
        # through Responses and back (thinking from Claude has no place in Responses input; the
        # signature round trip there is for Responses' own reasoning items, tested below)
        via_resp = openai_responses.to_canonical(openai_responses.from_canonical(c, "m"))
        got = facts(via_resp)
        assert got["calls"] == want["calls"] and got["results"] == want["results"]
        assert got["images"] == want["images"]
        # through Anthropic (what an Anthropic upstream receives) and back
        via_anth = anthropic.to_canonical(orjson.loads(orjson.dumps(for_anthropic_upstream(c, "x"))))
        got = facts(via_anth)
        assert got["calls"] == want["calls"] and got["results"] == want["results"]
        assert got["images"] == want["images"]
        assert "_openai_chat" not in via_anth and "_openai_responses" not in via_anth


def _norm_responses(body: dict) -> dict:
    body = orjson.loads(orjson.dumps(body))
    for it in body.get("input") or ():
        it.pop("id", None)
        it.pop("status", None)
        if it.get("type") == "function_call":
            it["arguments"] = orjson.loads(it["arguments"])
    return body


@pytest.mark.parametrize("path", [p for p in FIXTURE_FILES if "/codex/" in str(p)], ids=lambda p: p.name)
def test_codex_request_round_trips_to_a_responses_upstream(path):
    body = load(path)["body"]
    again = openai_responses.from_canonical(openai_responses.to_canonical(body), body["model"])
    assert _norm_responses(again) == _norm_responses(body)


@pytest.mark.parametrize("path", [p for p in FIXTURE_FILES if "/claude-code/" in str(p)], ids=lambda p: p.name)
def test_claude_code_request_is_identity_for_an_anthropic_upstream(path):
    body = load(path)["body"]
    canonical = anthropic.to_canonical(body)
    assert anthropic_equivalent(for_anthropic_upstream(canonical, "anthropic")) == anthropic_equivalent(body)


def anthropic_equivalent(body: dict) -> dict:
    """Anthropic treats a string `content`/`system` and one text block alike; the canonical
    form always uses blocks."""
    body = copy.deepcopy(body)
    if isinstance(body.get("system"), str):
        body["system"] = [{"type": "text", "text": body["system"]}]
    for m in body["messages"]:
        if isinstance(m["content"], str):
            m["content"] = [{"type": "text", "text": m["content"]}]
    return body


def test_responses_reasoning_round_trips_byte_for_byte():
    item = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "plan"}], "encrypted_content": "gAAAA-opaque=="}
    body = {"model": "gpt-5-codex", "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                                              item,
                                              {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
                                              {"type": "function_call_output", "call_id": "c1", "output": "ok"}]}
    c = openai_responses.to_canonical(body)
    out = openai_responses.from_canonical(c, "gpt-5-codex")
    assert out["input"][1] == item
    # never sent to an Anthropic upstream (its signature check would 400)
    clean = for_anthropic_upstream(c, "openai_responses")
    assert not any(b.get("type") == "thinking" for m in clean["messages"] for b in m["content"])


def test_chat_request_round_trips_to_a_chat_upstream():
    body = {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}, "temperature": 0.2,
            "seed": 7, "response_format": {"type": "json_object"}, "max_completion_tokens": 300,
            "messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                                      {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}]},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}},
                             {"id": "call_2", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "call_1", "content": "a"},
                         {"role": "tool", "tool_call_id": "call_2", "content": "b"},
                         {"role": "user", "content": "thanks"}],
            "tools": [{"type": "function", "function": {"name": "look", "description": "d",
                                                        "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}}}}],
            "tool_choice": "auto", "parallel_tool_calls": True}
    out = openai_chat.from_canonical(openai_chat.to_canonical(body), "gpt-4o")
    for m in out["messages"]:
        for tc in m.get("tool_calls") or ():
            tc["function"]["arguments"] = orjson.loads(tc["function"]["arguments"])
    for m in body["messages"]:
        for tc in m.get("tool_calls") or ():
            tc["function"]["arguments"] = orjson.loads(tc["function"]["arguments"])
    assert out == body
