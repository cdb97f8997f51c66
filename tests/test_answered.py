"""Tools the proxy answers itself (lynkr/wire/answered.py), when two stages each add some to one
request: one loop answers a turn that calls tools of both, and a turn cut short by the round limit
says so to the user."""
import pytest

from lynkr.exchange import Exchange, Response
from lynkr.providers.call import intercept
from lynkr.wire.answered import answering


def _x() -> Exchange:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "go"}]}
    return Exchange.new("anthropic", body, original=body)


def _answer(tag):
    async def answer(x, block):
        return {"type": "tool_result", "tool_use_id": block["id"], "content": f"{tag}:{block['input']}"}
    return answer


def _call(i, name):
    return {"type": "tool_use", "id": f"t{i}", "name": name, "input": {"q": i}}


def _message(*content, stop="tool_use"):
    return {"role": "assistant", "content": list(content), "stop_reason": stop}


def _events(msg):
    evs = [{"type": "message_start", "message": {**msg, "content": []}}]
    for i, b in enumerate(msg["content"]):
        if b["type"] == "text":
            evs += [{"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                           {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": b["text"]}}]
        else:
            evs += [{"type": "content_block_start", "index": i, "content_block": {**b, "input": {}}},
                           {"type": "content_block_delta", "index": i,
                            "delta": {"type": "input_json_delta", "partial_json": '{"q": %d}' % b["input"]["q"]}}]
        evs.append({"type": "content_block_stop", "index": i})
    evs += [{"type": "message_delta", "delta": {"stop_reason": msg["stop_reason"]}, "usage": {"output_tokens": 1}},
                   {"type": "message_stop"}]

    async def gen():
        for ev in evs:
            yield ev
    return gen()


def _upstream(turns, stream):
    """resend(request) -> the next scripted turn; the requests it was sent."""
    sent = []

    async def resend(request):
        sent.append(request)
        msg = turns[len(sent)]
        return Response(events=_events(msg)) if stream else Response(message=msg)
    return resend, sent


async def _text_of(response, stream):
    if not stream:
        return response.message
    blocks: dict = {}
    stop = None
    async for ev in response.events:
        if ev["type"] == "content_block_start":
            blocks[ev["index"]] = dict(ev["content_block"])
        elif ev["type"] == "content_block_delta" and ev["delta"]["type"] == "text_delta":
            blocks[ev["index"]]["text"] += ev["delta"]["text"]
        elif ev["type"] == "message_delta":
            stop = ev["delta"]["stop_reason"]
    return {"content": [blocks[i] for i in sorted(blocks)], "stop_reason": stop}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_turn_calling_tools_of_two_stages_is_answered_by_one_loop(stream):
    """Crush's lynkr_expand and an MCP tool in one turn: both answered, one continuation upstream,
    each stage's counter counts its own calls, the client sees only the final text."""
    x = _x()
    x.interceptors += [answering({"lynkr_expand": _answer("expand")}, counter="expand_calls"),
                       answering({"mcp_tool": _answer("mcp")}, counter="mcp_calls")]
    turns = [_message(_call(1, "lynkr_expand"), _call(2, "mcp_tool")),
             _message({"type": "text", "text": "done"}, stop="end_turn")]
    resend, sent = _upstream(turns, stream)
    first = Response(events=_events(turns[0])) if stream else Response(message=turns[0])
    final = await _text_of(await intercept(x, first, resend), stream)
    assert [b["text"] for b in final["content"]] == ["done"] and final["stop_reason"] == "end_turn"
    assert len(sent) == 1
    results = sent[0]["messages"][-1]["content"]
    assert [r["content"] for r in results] == ["expand:{'q': 1}", "mcp:{'q': 2}"]
    assert x.vars["expand_calls"] == 1 and x.vars["mcp_calls"] == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_a_turn_cut_short_by_the_round_limit_says_so(stream):
    """A model that keeps calling the proxy's tool is answered `max_rounds` times; the turn then ends
    with a note the user can read, not silently."""
    x = _x()
    x.interceptors.append(answering({"lynkr_expand": _answer("expand")}, counter="expand_calls", max_rounds=2))
    turns = [_message({"type": "text", "text": f"look {i}"}, _call(i, "lynkr_expand")) for i in range(4)]
    resend, sent = _upstream(turns, stream)
    first = Response(events=_events(turns[0])) if stream else Response(message=turns[0])
    final = await _text_of(await intercept(x, first, resend), stream)
    texts = [b["text"] for b in final["content"]]
    assert texts[:3] == ["look 0", "look 1", "look 2"] and "stopped" in texts[-1] and "2 rounds" in texts[-1]
    assert all(b["type"] == "text" for b in final["content"]) and final["stop_reason"] == "end_turn"
    assert len(sent) == 2 and x.vars["expand_calls"] == 3
