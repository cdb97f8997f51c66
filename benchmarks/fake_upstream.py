"""An Anthropic-compatible upstream that answers instantly, for overhead benchmarks.

    python -m benchmarks.fake_upstream --port 9100 [--chunks 500]

Non-streaming requests get a fixed small message; streaming ones get `--chunks` text deltas.
"""
from __future__ import annotations

import argparse
import asyncio

import orjson
from aiohttp import web

MESSAGE = orjson.dumps({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "bench",
    "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 100, "output_tokens": 1},
})


def stream_body(chunks: int) -> bytes:
    def ev(name, payload):
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
    parts = [ev("message_start", {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "bench", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 100, "output_tokens": 1}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
    for i in range(chunks):
        parts.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": f"tok{i} "}}))
    parts += [ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                   "usage": {"output_tokens": chunks}}),
              ev("message_stop", {"type": "message_stop"})]
    return b"".join(parts)


def make_app(chunks: int) -> web.Application:
    events = stream_body(chunks)

    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        # Only peek at the stream flag, as a real upstream must parse the body too.
        if b'"stream":true' in body or b'"stream": true' in body:
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            # One write per event, as a real upstream flushes them.
            for part in events.split(b"\n\n")[:-1]:
                await resp.write(part + b"\n\n")
            await resp.write_eof()
            return resp
        return web.Response(body=MESSAGE, content_type="application/json")

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_post("/v1/messages", messages)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--chunks", type=int, default=500)
    args = ap.parse_args()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(make_app(args.chunks), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
