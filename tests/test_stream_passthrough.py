"""Anthropic client, Anthropic upstream: the stream passes through as the upstream's bytes
(lynkr/wire/sse.py SSEBody.reads, wire/anthropic.py write_verbatim), with every guarantee of the
event path kept: the first event is checked before the client is committed, whole events only,
an error event or a broken stream ends with our error event, the final message and usage are
still known, and streams in any other shape go through the event path."""
import asyncio
import json
import random

import aiohttp
import orjson
import pytest
from aiohttp import web

from lynkr.exchange import Exchange, Response
from lynkr.providers.resilience import Breaker, peek_first, stream_guard
from lynkr.wire import anthropic
from lynkr.wire.events import MessageAccumulator
from lynkr.wire.sse import SSEBody, parse_block, parse_events
from tests.conftest import FIXTURES, start_app
from tests.helpers.render_http import rendered
from tests.helpers.wire_upstreams import step_to_message

SCRIPTS = sorted((FIXTURES / "claude-code").glob("*/upstream_script.json"))


def fixture_messages() -> list[dict]:
    """Every answer of the Claude Code fixtures' scripts, plus one with a thinking block."""
    out = []
    for path in SCRIPTS:
        out += [step_to_message(step, "claude-sonnet-4-5") for step in json.loads(path.read_text())]
    out.append(step_to_message([{"type": "thinking", "thinking": "Let me look.", "signature": "EqQBCkYIBxgC"},
                                {"type": "text", "text": "Line one\nline \"two\" — ünïcode ✓"}]))
    return out


MESSAGES = fixture_messages()


def stream_of(message: dict, chunk: int = 5) -> bytes:
    """The message as Anthropic streams it: `event:` lines, compact JSON, deltas of a few characters."""
    def ev(payload):
        return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
    head = {k: v for k, v in message.items() if k not in ("content", "usage", "stop_reason", "stop_sequence")}
    out = [ev({"type": "message_start", "message": {**head, "content": [], "stop_reason": None, "stop_sequence": None,
                                                    "usage": {"input_tokens": message["usage"]["input_tokens"],
                                                              "output_tokens": 1}}}),
           ev({"type": "ping"})]
    for i, b in enumerate(message["content"]):
        field, delta, start = {"text": ("text", "text_delta", {"type": "text", "text": ""}),
                               "thinking": ("thinking", "thinking_delta", {"type": "thinking", "thinking": "", "signature": ""}),
                               "tool_use": (None, "input_json_delta", {**b, "input": {}})}[b["type"]]
        out.append(ev({"type": "content_block_start", "index": i, "content_block": start}))
        text = b[field] if field else orjson.dumps(b["input"]).decode()
        for j in range(0, len(text), chunk):
            d = {"type": delta, field or "partial_json": text[j:j + chunk]}
            out.append(ev({"type": "content_block_delta", "index": i, "delta": d}))
        if b["type"] == "thinking":
            out.append(ev({"type": "content_block_delta", "index": i,
                           "delta": {"type": "signature_delta", "signature": b["signature"]}}))
        out.append(ev({"type": "content_block_stop", "index": i}))
    out.append(ev({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    out.append(ev({"type": "message_stop"}))
    return b"".join(out)


def cuts_of(data: bytes, how: str, rnd: random.Random) -> list[bytes]:
    if how == "whole":
        return [data]
    if how == "per-event":
        sep = b"\r\n\r\n" if b"\r\n" in data else b"\n\n"
        return [e + sep for e in data.split(sep) if e]
    cuts = sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, rnd.randint(1, 40))))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


class Chunked:
    """Stands in for aiohttp's StreamReader: the body in the given network reads."""

    def __init__(self, parts: list[bytes]):
        self.parts = parts

    async def iter_any(self):
        for p in self.parts:
            if p:
                yield p


def slow_parse(data: bytes) -> list[dict]:
    out = []
    for block in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        ev = parse_block(block) if block.strip() else None
        if ev is not None and ev[1]:
            out.append(orjson.loads(ev[1]))
    return out


# ---- the byte reader --------------------------------------------------------------------------

@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
async def test_reads_are_whole_events_and_the_whole_body_at_any_split(crlf):
    rnd = random.Random(9)
    for message in MESSAGES:
        data = stream_of(message)
        wire = data.replace(b"\n", b"\r\n") if crlf else data
        for how in ("whole", "per-event", "random", "random", "random"):
            body = SSEBody(Chunked(cuts_of(wire, how, rnd)), "anthropic")
            first = await body.peek()
            assert first["type"] == "message_start" and body.verbatim
            fed: list[dict] = []
            pieces = [p async for p in body.reads(fed.extend)]
            assert all(p.endswith(b"\n\n") for p in pieces)         # never half an event
            assert b"".join(pieces) == data                        # CRLF arrives as LF, as on the event path
            assert fed == slow_parse(data)


async def test_iterating_after_a_peek_gives_every_event_once():
    data = stream_of(MESSAGES[0])
    body = SSEBody(Chunked(cuts_of(data, "random", random.Random(3))), "anthropic")
    await body.peek()
    assert [dict(e) async for e in body] == slow_parse(data)


async def test_a_last_event_without_its_blank_line_is_written_whole_and_a_cut_one_is_an_error():
    data = stream_of(MESSAGES[0]).rstrip(b"\n")
    body = SSEBody(Chunked([data]), "anthropic")
    await body.peek()
    assert b"".join([p async for p in body.reads()]) == data + b"\n\n"
    cut = stream_of(MESSAGES[0])[:-12]
    body = SSEBody(Chunked([cut]), "anthropic")
    await body.peek()
    pieces = []
    with pytest.raises(ValueError):
        async for p in body.reads():
            pieces.append(p)
    assert not b"".join(pieces).endswith(cut[-20:])          # the cut event was never written


@pytest.mark.parametrize("odd", [
    b": keepalive\n\n",                                                      # a comment
    b'data: {"type":"ping"}\n\n',                                            # no event line
    b'event: ping\ndata: {"type":\ndata: "ping"}\n\n',                       # data on two lines
    b'event: ping\nid: 7\ndata: {"type":"ping"}\n\n',                        # another field
    b"event: ping\n\n",                                                      # no data
])
def test_parse_events_takes_the_general_path_for_any_other_shape(odd):
    data = stream_of(MESSAGES[0])
    i = data.index(b"event: content_block_start")
    mixed = data[:i] + odd + data[i:]
    assert parse_events(mixed) == slow_parse(mixed)
    assert parse_events(data) == slow_parse(data)


async def test_a_stream_in_another_shape_is_not_verbatim():
    data = stream_of(MESSAGES[0])
    data_only = b"".join(b"data: " + parse_block(b)[1] + b"\n\n" for b in data.split(b"\n\n") if b)
    body = SSEBody(Chunked([data_only]), "anthropic")
    assert (await body.peek())["type"] == "message_start" and not body.verbatim
    body = SSEBody(Chunked([b": OPENROUTER PROCESSING\n\n" + data]), "anthropic")
    await body.peek()
    assert body.verbatim                                       # a leading comment is dropped
    assert b"".join([p async for p in body.reads()]) == data


# ---- the renderer ------------------------------------------------------------------------------

async def render(parts: list[bytes], breaker: Breaker | None = None, **x_kw):
    """Render an upstream body as provider_call hands it over; (client bytes, exchange)."""
    x = Exchange.new("anthropic", {"messages": [], "stream": True})
    resp = await peek_first(Response(events=SSEBody(Chunked(parts), "anthropic")), 5)
    resp.events = stream_guard(resp.events, "up", breaker)
    x.response = resp
    status, body = await rendered(x, anthropic, lambda r: r.read())
    assert status == 200
    return body, x


def no_event_path(monkeypatch):
    """Fail if the renderer re-frames events one by one (the event path) instead of passing bytes."""
    def refuse(*a, **kw):
        raise AssertionError("the event path was used")
    monkeypatch.setattr(anthropic, "sse_event", refuse)


async def test_client_gets_the_upstreams_bytes_and_the_final_message_is_known(monkeypatch):
    no_event_path(monkeypatch)
    rnd = random.Random(5)
    for message in MESSAGES:
        data = stream_of(message)
        breaker = Breaker()
        got, x = await render(cuts_of(data, "random", rnd), breaker)
        assert got == data
        final = x.response.final
        assert final["content"] == message["content"] and final["stop_reason"] == message["stop_reason"]
        assert x.response.usage["output_tokens"] == message["usage"]["output_tokens"]
        assert x.response.usage["input_tokens"] == message["usage"]["input_tokens"]
        assert not breaker.failures and breaker.state == "closed"


def error_event(etype: str = "overloaded_error", message: str = "Overloaded") -> bytes:
    return b"event: error\ndata: " + orjson.dumps({"type": "error", "error": {"type": etype, "message": message}}) + b"\n\n"


@pytest.mark.parametrize("split", ["same-read", "own-read"])
async def test_an_error_event_mid_stream_reaches_the_client_and_the_breaker(split):
    events = [e + b"\n\n" for e in stream_of(MESSAGES[-1]).split(b"\n\n") if e]
    head = b"".join(events[:5])
    parts = [head + error_event()] if split == "same-read" else [head, error_event()]
    breaker = Breaker()
    got, x = await render(parts, breaker)
    assert got.startswith(head)
    rest = slow_parse(got[len(head):])
    assert [e["type"] for e in rest] == ["error"] and rest[0]["error"]["type"] == "overloaded_error"
    assert b"message_stop" not in got
    assert len(breaker.failures) == 1
    assert x.response.final is not None and x.response.final.get("id") == MESSAGES[-1]["id"]


async def test_a_stream_without_message_stop_or_with_a_broken_event_ends_with_an_error_event():
    data = stream_of(MESSAGES[0])
    nostop = data[:data.index(b"event: message_stop")]
    got, _ = await render([nostop])
    assert got.startswith(nostop) and slow_parse(got[len(nostop):])[0]["type"] == "error"

    # Bytes go out before they are parsed: the broken event reaches the client, then our error event.
    i = data.index(b"event: content_block_stop")
    broken = data[:i] + b'event: content_block_delta\ndata: {"type":"content_blo\n\n'
    breaker = Breaker()
    got, _ = await render([broken], breaker)
    assert got.startswith(broken)
    assert slow_parse(got[len(broken):])[0]["type"] == "error"
    assert len(breaker.failures) == 1


async def test_another_shape_goes_through_the_event_path_with_event_lines():
    data = stream_of(MESSAGES[0])
    data_only = b"".join(b"data: " + parse_block(b)[1] + b"\n\n" for b in data.split(b"\n\n") if b)
    got, x = await render([data_only])
    assert got == data                                        # every event named, bytes otherwise kept
    assert x.response.final["content"] == MESSAGES[0]["content"]


# ---- before the first byte: retry and fallback still act ------------------------------------------

PIPE = """
version: 1
server: {shed: {enabled: false}}
providers:
  bad:  {kind: anthropic, base_url: "%s", retry: {attempts: 1}}
  good: {kind: anthropic, base_url: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "bad:*"}%s}
%s
telemetry: {enabled: false}
"""


class BytesUpstream:
    """Answers every streamed request with fixed bytes, in the given writes."""

    def __init__(self, parts: list[bytes]):
        self.parts = parts
        self.calls = 0

    async def messages(self, request):
        await request.read()
        self.calls += 1
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for p in self.parts:
            await resp.write(p)
        await resp.write_eof()
        return resp

    def app(self):
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        return app


BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("first", ["error-event", "empty"])
@pytest.mark.parametrize("fallback", [False, True], ids=["alone", "fallback"])
async def test_an_error_or_nothing_before_the_first_byte_is_retryable(first, fallback, lynkr, write_pipeline):
    good_bytes = stream_of(MESSAGES[0])
    bad = BytesUpstream([error_event()] if first == "error-event" else [])
    good = BytesUpstream([good_bytes])
    runners = [(await start_app(bad.app())), (await start_app(good.app()))]
    try:
        pipe = PIPE % (runners[0][1], runners[1][1], ", on_error: backup" if fallback else "",
                       "  - {id: backup, uses: fallback, with: {to: ['good:*']}}" if fallback else "")
        _, url = await lynkr(write_pipeline(pipe))
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/messages", json=BODY) as r:
                status, raw = r.status, await r.read()
                headers = r.headers
    finally:
        for runner, _ in runners:
            await runner.cleanup()
    if fallback:
        assert status == 200 and raw == good_bytes and headers["x-lynkr-fallback"] == "good:*"
    else:
        assert status == (529 if first == "error-event" else 502)
        err = orjson.loads(raw)
        assert err["type"] == "error" and headers["x-should-retry"] == "true"
        if first == "error-event":
            assert err["error"]["type"] == "overloaded_error"
    assert bad.calls == 1


async def test_through_the_proxy_the_client_gets_the_fixture_stream_byte_for_byte(lynkr, write_pipeline, monkeypatch):
    no_event_path(monkeypatch)
    rnd = random.Random(11)
    up = BytesUpstream([])
    runner, up_url = await start_app(up.app())
    try:
        _, url = await lynkr(write_pipeline(PIPE % (up_url, up_url, "", "")))
        async with aiohttp.ClientSession() as s:
            for message in MESSAGES:
                data = stream_of(message)
                for how in ("whole", "per-event", "random"):
                    up.parts = cuts_of(data, how, rnd)
                    async with s.post(url + "/v1/messages", json=BODY) as r:
                        assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
                        assert await r.read() == data
    finally:
        await runner.cleanup()


async def test_the_final_message_accumulates_from_bytes_like_from_events():
    for message in MESSAGES:
        data = stream_of(message)
        acc = MessageAccumulator()
        for ev in parse_events(data):
            acc.feed(ev)
        assert acc.stopped and acc.message["content"] == message["content"]


def test_feed_all_builds_what_feed_builds_even_from_odd_streams():
    rnd = random.Random(4)
    for message in MESSAGES:
        events = parse_events(stream_of(message))
        for _ in range(30):
            evs = list(events)
            for _ in range(rnd.randint(0, 4)):       # deltas after a stop, to unknown blocks, of unknown types
                i = rnd.randrange(1, len(evs))
                evs.insert(i, rnd.choice([
                    {"type": "content_block_delta", "index": rnd.randint(0, 3), "delta": {"type": "text_delta", "text": "x"}},
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "odd_delta", "text": "y"}},
                    {"type": "content_block_delta", "index": 0, "delta": None},
                    {"type": "content_block_stop", "index": rnd.randint(0, 3)},
                    {"type": "ping"}]))
            one, many = MessageAccumulator(), MessageAccumulator()
            for ev in evs:
                one.feed(ev)
            cut = rnd.randrange(len(evs))
            many.feed_all(evs[:cut])
            many.feed_all(evs[cut:])
            assert many.message == one.message and many.usage == one.usage and many.stopped == one.stopped


class TrickleUpstream:
    """Sends the first events, then one delta every 20 ms until the client side goes away."""

    def __init__(self, head: bytes):
        self.head = head
        self.gone = asyncio.Event()

    async def messages(self, request):
        await request.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(self.head)
        delta = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,' \
                b'"delta":{"type":"text_delta","text":"more "}}\n\n'
        try:
            for _ in range(500):
                await asyncio.sleep(0.02)
                await resp.write(delta)
        except (ConnectionError, RuntimeError):
            self.gone.set()
        return resp

    def app(self):
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        return app


async def test_a_client_that_hangs_up_closes_the_upstream_stream_and_fails_no_breaker(lynkr, write_pipeline):
    data = stream_of(MESSAGES[-1])
    head = data[:data.index(b"event: content_block_delta")]
    up = TrickleUpstream(head)
    runner, up_url = await start_app(up.app())
    try:
        _, url = await lynkr(write_pipeline(PIPE % (up_url, up_url, "", "")))
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/messages", json=BODY) as r:
                assert (await r.content.readany()).startswith(b"event: message_start\n")
                r.connection.transport.abort()
        async with asyncio.timeout(5):
            await up.gone.wait()                      # the upstream connection went with the client
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/health/providers") as r:
                breakers = (await r.json())["breakers"]
        assert all(b["recent_failures"] == 0 and b["state"] == "closed" for b in breakers.values()), breakers
    finally:
        await runner.cleanup()


async def test_a_body_is_read_one_way_only():
    body = SSEBody(Chunked([stream_of(MESSAGES[0])]), "anthropic")
    await body.peek()
    events = aiter_of(body)
    assert not body.verbatim                      # once iterated, only events remain
    with pytest.raises(RuntimeError):
        body.reads()
    assert (await events.__anext__())["type"] == "message_start"
    await body.aclose()
    body = SSEBody(Chunked([stream_of(MESSAGES[0])]), "anthropic")
    await body.peek()
    body.reads()
    with pytest.raises(RuntimeError):
        aiter_of(body)
    await body.aclose()


def aiter_of(it):
    return it.__aiter__()
