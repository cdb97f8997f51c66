"""What every client protocol's `render` shares: the frame around writing an answer.

Errors go out in the protocol's envelope; bytes already in the client's protocol pass through;
a client that did not ask for a stream gets one JSON body (a streaming upstream is gathered);
otherwise the protocol's own `write_stream` turns canonical events into its stream. Either way
the finished message and usage end up on `x.response` for `after` hooks and telemetry.
"""
from __future__ import annotations

from typing import Awaitable, Callable

import orjson
from aiohttp import web

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange
from lynkr.redact import printable
from lynkr.wire.events import MessageAccumulator, collect, message_to_events
from lynkr.wire.sse import finish_stream

__all__ = ["respond", "lynkr_headers", "ping_interval", "ClientGone"]

StreamWriter = Callable[[web.StreamResponse, object, MessageAccumulator], Awaitable[None]]


def lynkr_headers(x: Exchange) -> dict:
    h = {"x-lynkr-request-id": x.id}
    if x.route is not None:
        h["x-lynkr-provider"] = x.route.provider
        # `provider:*` keeps the client's model: name the one actually called.
        h["x-lynkr-model"] = printable(x.request.get("model") or x.route.model if x.route.model == "*" else x.route.model,
                                       mask=False)
    if x.vars.get("tier"):
        h["x-lynkr-tier"] = str(x.vars["tier"])
    if x.response is not None:
        # Values may come from a client or an upstream (a model name, a route): never a control
        # character, which would end the header block or the response.
        h.update((k, printable(v, mask=False)) for k, v in x.response.headers.items())
    return h


def ping_interval(x: Exchange) -> float | None:
    p = x.pipeline
    server = ((getattr(p, "config", None) or {}).get("server") or {}) if p is not None else {}
    return server.get("ping_interval_s")


async def respond(request: web.Request, x: Exchange, *, error_response: Callable[[ProxyError, dict], web.Response],
                  to_body: Callable[[dict], dict], write_stream: StreamWriter) -> web.StreamResponse:
    resp = x.response
    headers = lynkr_headers(x)
    if resp.error is not None:
        return error_response(resp.error, headers)
    if resp.raw is not None and resp.raw_protocol == x.client:
        return await _passthrough(request, x, headers)
    if not x.stream:
        message = resp.message
        if message is None:
            try:
                message = await collect(resp.events)
            except ProxyError as e:
                return error_response(e, headers)
            resp.final = message
            resp.usage = message.get("usage") or {}
        return web.Response(body=orjson.dumps(to_body(message)), content_type="application/json", headers=headers)
    events = resp.events if resp.events is not None else message_to_events(resp.message)
    out = web.StreamResponse(status=200, headers={**headers, "content-type": "text/event-stream",
                                                  "cache-control": "no-cache"})
    # The headers leave with the first event, in one send: the first event is in hand when the
    # stream starts (provider_call peeked it), and a separate send for the headers wakes the client
    # once more and costs a loop turn before the first byte. (aiohttp >= 3.10 reads this flag;
    # older versions send the headers at prepare, as before.)
    out._send_headers_immediately = False
    acc = MessageAccumulator()
    try:
        await out.prepare(request)
        await write_stream(out, events, acc)
    except BaseException as e:
        # The client went away (or rendering failed): the upstream's stream is still open (its
        # connection, a breaker probe). Close it now rather than when the generators are collected.
        await _close(events)
        if isinstance(e, ConnectionError):
            raise ClientGone(out) from e
        raise
    resp.final = acc.message
    if acc.usage:
        resp.usage = acc.usage
    await finish_stream(out)
    return out


async def _passthrough(request: web.Request, x: Exchange, headers: dict) -> web.StreamResponse:
    resp = x.response
    if not x.stream:
        body = b"".join([c async for c in resp.raw])
        return web.Response(body=body, content_type=resp.raw_content_type or "application/json", headers=headers)
    out = web.StreamResponse(status=200, headers={**headers, "content-type": resp.raw_content_type or "text/event-stream",
                                                  "cache-control": "no-cache"})
    try:
        await out.prepare(request)
        async for c in resp.raw:
            await out.write(c)
    except ConnectionError as e:
        await _close(resp.raw)
        raise ClientGone(out) from e
    await finish_stream(out)
    return out


class ClientGone(ConnectionResetError):
    """The client closed the connection while its stream was being written. `response` is that
    stream: the handler returns it, and aiohttp ends the connection quietly. Raised on to aiohttp,
    every Ctrl-C in a client was logged as a 500 with a traceback (~3 KB each)."""

    def __init__(self, response: web.StreamResponse):
        super().__init__("the client closed the connection")
        self.response = response


async def _close(stream) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
