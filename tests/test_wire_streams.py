"""The two halves of each OpenAI module agree: a canonical message rendered as a chat or Responses
stream (what a client receives) and read back by the upstream translator (what a provider does
with an upstream of that protocol) is the same message. Plus the Responses translator on the
example stream of protocols.md §4.4.1."""
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from lynkr.exchange import Exchange, Response
from lynkr.wire import openai_chat, openai_responses
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE
from lynkr.wire.events import MessageAccumulator, message_to_events

MESSAGES = [
    {"content": [{"type": "text", "text": "Hello there, in several words."}], "stop_reason": "end_turn"},
    {"content": [{"type": "text", "text": "Running."},
                 {"type": "tool_use", "id": "call_1", "name": "shell", "input": {"command": ["ls", "-la"]}},
                 {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}], "stop_reason": "tool_use"},
    {"content": [{"type": "thinking", "thinking": "plan it", "signature": SYNTHETIC_SIGNATURE},
                 {"type": "text", "text": "Done."}], "stop_reason": "end_turn"},
]


def full(m):
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_sequence": None,
            "usage": {"input_tokens": 30, "output_tokens": 7, "cache_read_input_tokens": 10}, **m}


class Capture:
    """Stands in for web.StreamResponse: keeps what the renderer writes."""

    def __init__(self, *a, **kw):
        self.chunks = []

    async def prepare(self, request):
        pass

    async def write(self, b):
        self.chunks.append(b)

    async def write_eof(self):
        pass


async def render_stream(module, message, original, monkeypatch):
    monkeypatch.setattr(web, "StreamResponse", Capture)
    x = Exchange.new(module.CLIENT, {"messages": [], "stream": True}, original=original)
    x.response = Response(events=message_to_events(message))
    out = await module.render(make_mocked_request("POST", "/"), x)
    return b"".join(out.chunks), x


def data_lines(raw: bytes) -> list[bytes]:
    return [l[6:] for l in raw.split(b"\n") if l.startswith(b"data: ")]


async def accumulate(events) -> dict:
    acc = MessageAccumulator()
    async for e in events:
        acc.feed(e)
    return acc.message


async def aiter(items):
    for i in items:
        yield i


def same(a: dict, b: dict):
    assert a["content"] == b["content"]
    assert a["stop_reason"] == b["stop_reason"]
    assert a["usage"]["output_tokens"] == b["usage"]["output_tokens"]
    assert a["usage"]["input_tokens"] == b["usage"]["input_tokens"]


@pytest.mark.parametrize("m", MESSAGES, ids=["text", "tools", "thinking"])
async def test_chat_render_then_parse_is_identity(m, monkeypatch):
    msg = full(m)
    raw, x = await render_stream(openai_chat, msg, {"model": "m", "stream_options": {"include_usage": True}}, monkeypatch)
    lines = data_lines(raw)
    assert lines[-1] == b"[DONE]"
    back = await accumulate(openai_chat.events_from_openai(aiter([orjson.loads(l) for l in lines[:-1]])))
    same(back, msg)
    assert x.response.final["content"] == msg["content"]        # what after-hooks and telemetry see


@pytest.mark.parametrize("m", MESSAGES, ids=["text", "tools", "thinking"])
async def test_responses_render_then_parse_is_identity(m, monkeypatch):
    msg = full(m)
    raw, _ = await render_stream(openai_responses, msg, {"model": "m", "input": "x"}, monkeypatch)
    events = [orjson.loads(l) for l in data_lines(raw)]
    assert events[-1]["type"] == "response.completed"
    back = await accumulate(openai_responses.events_from_responses(aiter(events)))
    same(back, msg)


async def test_responses_custom_tool_round_trip(monkeypatch):
    msg = full({"content": [{"type": "tool_use", "id": "call_9", "name": "apply_patch",
                             "input": {"input": "*** Begin Patch\n+\"quoted\"\n*** End Patch"}}], "stop_reason": "tool_use"})
    original = {"model": "m", "input": "x", "tools": [{"type": "custom", "name": "apply_patch"}]}
    raw, _ = await render_stream(openai_responses, msg, original, monkeypatch)
    events = [orjson.loads(l) for l in data_lines(raw)]
    item = next(e["item"] for e in events if e["type"] == "response.output_item.done")
    assert item["type"] == "custom_tool_call" and item["input"] == msg["content"][0]["input"]["input"]
    back = await accumulate(openai_responses.events_from_responses(aiter(events)))
    same(back, msg)


# protocols.md §4.4.1, as an upstream would send it
EXAMPLE = [
    {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_123", "model": "gpt-5-codex", "status": "in_progress", "output": []}},
    {"type": "response.in_progress", "sequence_number": 1, "response": {"id": "resp_123"}},
    {"type": "response.output_item.added", "sequence_number": 2, "output_index": 0, "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}},
    {"type": "response.content_part.added", "sequence_number": 3, "item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": ""}},
    {"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Running ls"},
    {"type": "response.output_text.done", "sequence_number": 5, "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": "Running ls"},
    {"type": "response.output_item.done", "sequence_number": 7, "output_index": 0, "item": {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "Running ls"}]}},
    {"type": "response.output_item.added", "sequence_number": 8, "output_index": 1, "item": {"id": "fc_1", "type": "function_call", "call_id": "call_42", "name": "shell", "arguments": ""}},
    {"type": "response.function_call_arguments.delta", "sequence_number": 9, "item_id": "fc_1", "output_index": 1, "delta": "{\"command\":[\"ls\","},
    {"type": "response.function_call_arguments.delta", "sequence_number": 10, "item_id": "fc_1", "output_index": 1, "delta": "\"-la\"]}"},
    {"type": "response.function_call_arguments.done", "sequence_number": 11, "item_id": "fc_1", "output_index": 1, "arguments": "{\"command\":[\"ls\",\"-la\"]}"},
    {"type": "response.output_item.done", "sequence_number": 12, "output_index": 1, "item": {"id": "fc_1", "type": "function_call", "call_id": "call_42", "name": "shell", "arguments": "{\"command\":[\"ls\",\"-la\"]}"}},
    {"type": "response.completed", "sequence_number": 13, "response": {"id": "resp_123", "status": "completed", "output": [],
                                                                     "usage": {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 40, "total_tokens": 1240}}},
]


async def test_events_from_responses_on_the_reference_stream():
    msg = await accumulate(openai_responses.events_from_responses(aiter(EXAMPLE)))
    assert msg["content"] == [{"type": "text", "text": "Running ls"},
                              {"type": "tool_use", "id": "call_42", "name": "shell", "input": {"command": ["ls", "-la"]}}]
    assert msg["stop_reason"] == "tool_use"
    assert msg["usage"] == {"input_tokens": 176, "output_tokens": 40, "cache_read_input_tokens": 1024}


async def test_events_from_responses_without_completed_is_an_error():
    from lynkr.errors import ProxyError
    with pytest.raises(ProxyError, match="response.completed"):
        await accumulate(openai_responses.events_from_responses(aiter(EXAMPLE[:-1])))


def test_message_from_responses_reasoning_keeps_encrypted_content():
    resp = {"id": "resp_1", "status": "completed", "output": [
        {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}], "encrypted_content": "gAAA=="},
        {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}
    m = openai_responses.message_from_responses(resp)
    assert m["content"][0]["signature"] == "gAAA==" and m["content"][1] == {"type": "text", "text": "hi"}
    assert m["stop_reason"] == "end_turn"
