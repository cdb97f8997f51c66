"""Anthropic Messages (`POST /v1/messages`): what Claude Code speaks.

The canonical form is the Messages shape, so parsing only normalises (`system` and every
`content` become block lists) and keeps unknown fields; rendering writes the canonical
message or events back as JSON or SSE with `event:` lines.
"""
from __future__ import annotations

import orjson
from aiohttp import web

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange
from lynkr.wire.events import KeepAlive
from lynkr.wire.render import ping_interval, respond
from lynkr.wire.sse import sse_event

__all__ = ["CLIENT", "to_canonical", "render", "error_response", "error_event"]

CLIENT = "anthropic"
PING = b'event: ping\ndata: {"type":"ping"}\n\n'


# to_canonical keeps the client's parts (the same objects) where it changes nothing: the JSON of
# those the client resent unchanged is known from its previous request (lynkr.body.Body.read).
PARTS_SHARED = True


def to_canonical(body) -> dict:
    if not isinstance(body, dict):
        raise ProxyError(400, "request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ProxyError(400, "messages: field required (a list of {role, content})" if messages is None
                         else "messages: must be a list")
    if "model" in body and not isinstance(body["model"], str):
        raise ProxyError(400, "model: must be a string")
    mt = body.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        raise ProxyError(400, "max_tokens: must be a positive integer")
    if "tools" in body and not isinstance(body["tools"], list):
        raise ProxyError(400, "tools: must be a list")
    out = dict(body)
    system = body.get("system")
    if isinstance(system, str):
        out["system"] = [{"type": "text", "text": system}] if system else []
    elif system is not None and not isinstance(system, list):
        raise ProxyError(400, "system: must be a string or a list of text blocks")
    norm = []
    changed = False
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ProxyError(400, f"messages.{i}: must be an object")
        if m.get("role") not in ("user", "assistant", "system"):
            raise ProxyError(400, f"messages.{i}.role: must be 'user' or 'assistant' (got {m.get('role')!r})")
        c = m.get("content")
        if isinstance(c, str):
            m = {**m, "content": [{"type": "text", "text": c}]}
            changed = True
        elif c is not None and not isinstance(c, list):
            raise ProxyError(400, f"messages.{i}.content: must be a string or a list of blocks")
        norm.append(m)
    if changed:
        out["messages"] = norm
    return out


def error_body(err: ProxyError) -> dict:
    return {"type": "error", "error": {"type": err.type, "message": err.message}}


def error_response(err: ProxyError, headers: dict | None = None) -> web.Response:
    h = dict(headers or {})
    if err.retry_after is not None:
        h["retry-after"] = str(max(0, int(round(err.retry_after))))
    h["x-should-retry"] = "true" if err.retryable else "false"
    return web.Response(status=err.status, body=orjson.dumps(error_body(err)),
                        content_type="application/json", headers=h)


def error_event(err: ProxyError) -> bytes:
    return sse_event("error", error_body(err))


async def render(request: web.Request, x: Exchange) -> web.StreamResponse:
    async def write_stream(out, events, acc):
        if getattr(events, "verbatim", False) and events.protocol == CLIENT:
            return await write_verbatim(out, events, acc, ping_interval(x))
        stopped = False
        # Pings only after message_start: Claude Code rejects any event before it.
        held: list[bytes] = []      # events of one upstream read, written together (RawEvent.more)
        async with KeepAlive(out.write, PING, ping_interval(x), armed=False) as ka:
            try:
                async for ev in events:
                    t = ev.get("type", "message")
                    acc.feed(ev)
                    stopped = stopped or t == "message_stop"
                    held.append(sse_event(t, ev))
                    if ka.armed and getattr(ev, "more", False):
                        continue      # the first event goes out at once: time to first byte
                    await out.write(held[0] if len(held) == 1 else b"".join(held))
                    held.clear()
                    ka.touch()
                    ka.armed = True
                if not stopped:
                    # Ending without message_stop leaves Claude Code guessing; say what happened.
                    raise ProxyError(502, "the upstream stream ended before the message was complete", type="api_error")
            except ProxyError as e:
                ka.armed = False
                await out.write(b"".join(held) + error_event(e))
                held.clear()
            if held:
                await out.write(b"".join(held))
            ka.armed = False

    return await respond(request, x, error_response=error_response, to_body=lambda m: m, write_stream=write_stream)


async def write_verbatim(out, body, acc, interval: float | None) -> None:
    """An Anthropic upstream's stream as its bytes: each read's whole events are written first and
    parsed afterwards (for the final message and usage, and to know message_stop came), so the
    client's first byte waits for no parsing. The checks the event path makes still hold: an
    `error` event, a failed read or an event that does not parse ends the stream with our error
    event (the guard finds an `error` event before writing it), and so does an end without
    message_stop."""
    async with KeepAlive(out.write, PING, interval, armed=False) as ka:
        try:
            async for chunk in body.reads(acc.feed_all):
                await out.write(chunk)
                ka.touch()
                ka.armed = True       # the first piece starts with message_start (SSEBody.verbatim)
            if not acc.stopped:
                raise ProxyError(502, "the upstream stream ended before the message was complete", type="api_error")
        except ProxyError as e:
            ka.armed = False
            await out.write(error_event(e))
        ka.armed = False


# ---- count_tokens and models ------------------------------------------------------------

def count_tokens_body(body) -> dict:
    """The canonical request for `/v1/messages/count_tokens`: like a message request without
    `max_tokens`; system, messages and tools all count."""
    return to_canonical(body)


def estimate_tokens(canonical: dict) -> int:
    from lynkr.kit.tokens import count_request
    # cl100k_base undercounts Claude's tokenizer by roughly a tenth on code and prose.
    return max(1, int(round(count_request(canonical) * 1.1)))


def models_body(ids: list[str]) -> dict:
    data = [{"type": "model", "id": i, "display_name": i, "created_at": "2025-01-01T00:00:00Z"} for i in ids]
    return {"data": data, "has_more": False, "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None}
