"""A scripted Anthropic Messages upstream that speaks the real wire format (SSE with `event:`
lines, cumulative usage), for tests and benchmarks. It records every request it receives."""
from __future__ import annotations

import asyncio
import itertools

import orjson
from aiohttp import web

_ids = itertools.count(1)


def text_message(text: str, model: str = "claude-test", input_tokens: int = 10) -> dict:
    return {"id": f"msg_{next(_ids):06d}", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": max(1, len(text.split()))}}


def tool_message(name: str, tool_input: dict, text: str | None = None, model: str = "claude-test") -> dict:
    content = ([{"type": "text", "text": text}] if text else []) + [
        {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": tool_input}]
    return {"id": f"msg_{next(_ids):06d}", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": "tool_use", "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5}}


def sse(message: dict, chunk: int = 8) -> list[bytes]:
    def ev(name, payload):
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
    head = {k: v for k, v in message.items() if k not in ("content", "usage", "stop_reason", "stop_sequence")}
    # The prompt side of usage (input and the cache counts) comes in message_start, as Anthropic sends it.
    start_usage = {k: v for k, v in message["usage"].items() if k != "output_tokens"}
    out = [ev("message_start", {"type": "message_start", "message": {**head, "content": [], "stop_reason": None,
                                 "stop_sequence": None, "usage": {**start_usage, "output_tokens": 1}}})]
    out.append(ev("ping", {"type": "ping"}))
    for i, b in enumerate(message["content"]):
        if b["type"] == "text":
            out.append(ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}))
            t = b["text"]
            for j in range(0, len(t), chunk):
                out.append(ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                                      "delta": {"type": "text_delta", "text": t[j:j + chunk]}}))
        elif b["type"] == "tool_use":
            out.append(ev("content_block_start", {"type": "content_block_start", "index": i,
                                                  "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}))
            js = orjson.dumps(b["input"]).decode()
            for j in range(0, len(js), chunk):
                out.append(ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                                      "delta": {"type": "input_json_delta", "partial_json": js[j:j + chunk]}}))
        out.append(ev("content_block_stop", {"type": "content_block_stop", "index": i}))
    out.append(ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                    "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    out.append(ev("message_stop", {"type": "message_stop"}))
    return out


class AnthropicUpstream:
    """`script` is a callable(body) -> message dict, or a list of messages served in turn."""

    def __init__(self, script=None):
        self.requests: list[dict] = []
        self.raw: list[bytes] = []                      # the bodies as they arrived
        self.headers: list[dict] = []
        self.script = script or (lambda body: text_message("Hello from upstream."))
        self._turn = 0
        self.fail_next: list[tuple[int, dict]] = []   # (status, error body) served before the script
        self.chunk_delay = 0.0                          # seconds between streamed chunks
        self.streams_closed = 0                         # streams whose reader went away before the end

    def _answer(self, body: dict) -> dict:
        if callable(self.script):
            return self.script(body)
        msg = self.script[min(self._turn, len(self.script) - 1)]
        self._turn += 1
        return msg

    async def messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        self.raw.append(raw)
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.fail_next:
            status, err = self.fail_next.pop(0)
            return web.Response(status=status, body=orjson.dumps(err), content_type="application/json")
        msg = self._answer(body)
        if not body.get("stream"):
            return web.Response(body=orjson.dumps(msg), content_type="application/json")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for chunk in sse(msg):
                await resp.write(chunk)
                await asyncio.sleep(self.chunk_delay)
        except asyncio.CancelledError:
            self.streams_closed += 1
            raise
        except ConnectionError:
            self.streams_closed += 1
            return resp
        await resp.write_eof()
        return resp

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/messages", self.messages)
        return app
