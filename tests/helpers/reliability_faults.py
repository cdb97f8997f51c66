"""An Anthropic Messages upstream that misbehaves on command.

The command is the request's `model` (what Lynkr forwards from the client, or a fallback's target),
so one server plays a healthy and a broken upstream at once:

    ok          a normal answer (JSON or SSE with `event:` lines, cumulative usage)
    500 / 529   that status with Anthropic's error envelope (api_error / overloaded_error)
    429         rate_limit_error with `retry-after: 1`
    silence     reads the request, then never answers (until the client goes away)
    reset       headers and part of the body, then the TCP connection is aborted
    truncated   200 with a JSON body cut in half (content-length matches: the bytes are complete, the JSON is not)
    nostop      a stream that ends cleanly after message_delta, without message_stop
    stall       a stream that sends a few events, then goes quiet for longer than any idle timeout
    trickle     a healthy stream, one event every 30 ms
    slow        a healthy stream, one event every 100 ms (about 2 s in all); JSON answers after 1 s

Run it in its own process (`python -m tests.helpers.reliability_faults PORT`) so the tests count only
Lynkr's sockets and tasks; `GET /calls` tells how many requests each mode received.
"""
from __future__ import annotations

import asyncio
import sys
from collections import Counter

import orjson
from aiohttp import web

from tests.helpers.anthropic_upstream import sse, text_message

TEXT = "The quick brown fox jumps over the lazy dog, twice over, for the stream to have several deltas."


def _error(status: int, etype: str, message: str, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, content_type="application/json",
                        body=orjson.dumps({"type": "error", "error": {"type": etype, "message": message}}))


async def _until_client_gone(request: web.Request, limit: float = 120.0) -> None:
    # aiohttp does not cancel a handler when its client disconnects: watch the transport instead,
    # so a silent handler ends (and its socket closes) as soon as Lynkr gives up on it.
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while loop.time() < end:
        t = request.transport
        if t is None or t.is_closing():
            return
        await asyncio.sleep(0.02)


class FaultyUpstream:
    def __init__(self):
        self.calls: Counter = Counter()

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        mode = str(body.get("model") or "ok")
        self.calls[mode] += 1
        stream = bool(body.get("stream"))
        msg = text_message(TEXT, model=mode)

        if mode == "500":
            return _error(500, "api_error", "Internal server error")
        if mode == "529":
            return _error(529, "overloaded_error", "Overloaded")
        if mode == "429":
            return _error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                          headers={"retry-after": "1"})
        if mode == "silence":
            await _until_client_gone(request)
            return web.Response(status=204)
        if mode == "truncated" and not stream:
            raw = orjson.dumps(msg)
            return web.Response(body=raw[: len(raw) // 2], content_type="application/json")
        if mode == "reset" and not stream:
            raw = orjson.dumps(msg)
            resp = web.StreamResponse(headers={"content-type": "application/json", "content-length": str(len(raw))})
            await resp.prepare(request)
            await resp.write(raw[: len(raw) // 2])
            await asyncio.sleep(0.05)
            request.transport.abort()
            return resp
        if not stream:
            if mode == "slow":
                await asyncio.sleep(1.0)
            return web.Response(body=orjson.dumps(msg), content_type="application/json")

        events = sse(msg, chunk=8)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await resp.prepare(request)
        if mode == "reset":
            for ev in events[:5]:
                await resp.write(ev)
            await asyncio.sleep(0.05)
            request.transport.abort()
            return resp
        if mode == "truncated":
            for ev in events[:5]:
                await resp.write(ev)
            await resp.write(events[5][: len(events[5]) // 2] + b"\n\n")   # an event whose JSON stops halfway
            await asyncio.sleep(0.05)
            await resp.write_eof()
            return resp
        if mode == "nostop":
            for ev in events[:-1]:
                await resp.write(ev)
            await resp.write_eof()
            return resp
        if mode == "stall":
            for ev in events[:5]:
                await resp.write(ev)
            await _until_client_gone(request)
            return resp
        delay = {"trickle": 0.03, "slow": 0.1}.get(mode, 0)
        for ev in events:
            await resp.write(ev)
            await asyncio.sleep(delay)
        await resp.write_eof()
        return resp

    async def get_calls(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.calls))

    async def reset_calls(self, request: web.Request) -> web.Response:
        self.calls.clear()
        return web.json_response({})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/calls", self.get_calls)
        app.router.add_delete("/calls", self.reset_calls)
        return app


def main(port: int) -> None:
    web.run_app(FaultyUpstream().app(), host="127.0.0.1", port=port, access_log=None, print=None,
                shutdown_timeout=0.5, handle_signals=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
