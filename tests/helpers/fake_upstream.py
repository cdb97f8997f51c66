"""An Anthropic-compatible upstream that answers instantly, for overhead benchmarks
(benchmarks/overhead.py starts it; tests/test_bench_upstream.py checks its HTTP).

    python -m tests.helpers.fake_upstream --port 9100 [--chunks 500] [--server raw|aiohttp]

Non-streaming requests get a fixed small message; streaming ones get `--chunks` text deltas.

The default server is HTTP/1.1 written on asyncio's Protocol (keep-alive, Content-Length and
chunked request bodies, chunked SSE answers): ~20 µs of CPU a request where an aiohttp app takes
100–250 µs. On a 2-core machine the fake upstream shares the cores with the proxy under test, and an
upstream that costs as much as a bare proxy takes the CPU a second worker would use — a real
upstream runs elsewhere. `--server aiohttp` keeps the aiohttp app, to compare.
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


class RawUpstream(asyncio.Protocol):
    """One connection: requests parsed as they arrive (pipelined ones too), answered in order."""

    def __init__(self, events: list[bytes]):
        self.events = events
        self.buf = bytearray()
        self.need = 0           # bytes of the body still to come (a Content-Length request)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        # A 62 KB body comes in several reads: wait for all of it without parsing again.
        if self.need > len(self.buf):
            return
        while True:
            stream = self._take_request()
            if stream is None:
                return
            if stream:
                self.transport.write(STREAM_HEAD)
                # One chunk per event, as a real upstream flushes them.
                for ev in self.events:
                    self.transport.write(ev)
                self.transport.write(b"0\r\n\r\n")
            else:
                self.transport.write(MESSAGE_RESPONSE)

    def _take_request(self) -> bool | None:
        """Whether the next complete request asks for a stream (it is consumed from the buffer), or
        None until it is whole. Only the stream flag is looked at, as a real upstream must parse the
        body too."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).lower()
        start = end + 4
        if b"transfer-encoding: chunked" in head:
            return self._take_chunked(start)
        length = 0
        for line in head.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(self.buf) < start + length:
            self.need = start + length
            return None
        self.need = 0
        stream = _asks_stream(self.buf, start, start + length)
        del self.buf[:start + length]
        return stream

    def _take_chunked(self, pos: int) -> bool | None:
        body = bytearray()
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
            if len(self.buf) < eol + 2 + size + 2:
                return None
            body += self.buf[eol + 2: eol + 2 + size]
            pos = eol + 2 + size + 2
            if size == 0:
                # The clients benchmarked send no trailers: the blank line ends the body.
                del self.buf[:pos]
                return _asks_stream(body, 0, len(body))


def _asks_stream(buf: bytearray, start: int, end: int) -> bool:
    return buf.find(b'"stream":true', start, end) >= 0 or buf.find(b'"stream": true', start, end) >= 0


MESSAGE_RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(MESSAGE)).encode() + b"\r\n\r\n" + MESSAGE)
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunked_events(chunks: int) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(ev), ev) for ev in (p + b"\n\n" for p in stream_body(chunks).split(b"\n\n")[:-1])]


async def serve_raw(port: int, chunks: int) -> None:
    events = chunked_events(chunks)
    server = await asyncio.get_running_loop().create_server(lambda: RawUpstream(events), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--chunks", type=int, default=500)
    ap.add_argument("--server", choices=["raw", "aiohttp"], default="raw")
    args = ap.parse_args()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if args.server == "raw":
        asyncio.run(serve_raw(args.port, args.chunks))
    else:
        web.run_app(make_app(args.chunks), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
