"""Server-sent events: parse an upstream's stream, format ours."""
from __future__ import annotations

from typing import AsyncIterator

import orjson

__all__ = ["parse_block", "iter_sse", "iter_sse_batches", "SSEBody", "parse_events", "sse_event", "sse_data", "RawEvent",
           "finish_stream"]


class RawEvent(dict):
    """A parsed upstream event that remembers its original `data:` bytes, so a same-protocol
    renderer writes them back unchanged instead of serialising the dict again. A stage that
    rewrites an event makes a plain dict, which is serialised as usual.

    `more` says the upstream's same network read holds further events, so a renderer may hold
    this one's bytes and write them together with the next: one socket write per read instead
    of one per event (per-event writes were most of a 500-chunk stream's cost)."""

    __slots__ = ("raw", "more")

    def __init__(self, parsed: dict, raw: bytes, more: bool = False):
        super().__init__(parsed)
        self.raw = raw
        self.more = more


def parse_block(block: bytes) -> tuple[str | None, bytes] | None:
    if block.startswith(b"event: "):
        # The usual shape, `event: NAME\ndata: JSON` on two lines, without the general loop.
        nl = block.find(b"\n")
        if nl > 0 and block.startswith(b"data: ", nl + 1) and block.find(b"\n", nl + 1) < 0:
            return block[7:nl].decode(), block[nl + 7:]
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            event = value.decode()
    if data or event:
        return event, b"\n".join(data)
    return None


async def iter_sse(stream) -> AsyncIterator[tuple[str | None, bytes]]:
    """(event name, data bytes) for each event of an aiohttp StreamReader (or any async
    iterator of lines). Comment lines (`:`) are skipped; multi-line data is joined with \\n.

    A StreamReader is read in whatever chunks the network delivers and split on blank lines:
    reading it line by line costs an await per line, three per event."""
    if hasattr(stream, "iter_any"):
        async for batch in iter_sse_batches(stream):
            for ev in batch:
                yield ev
        return
    # Any other async iterator of lines: gather each event's lines and parse them like a block.
    lines: list[bytes] = []
    async for raw in stream:
        line = raw.rstrip(b"\r\n")
        if line:
            lines.append(line)
            continue
        ev = parse_block(b"\n".join(lines)) if lines else None
        lines = []
        if ev is not None:
            yield ev
    if lines and (ev := parse_block(b"\n".join(lines))) is not None:
        yield ev


async def iter_sse_batches(stream) -> AsyncIterator[list[tuple[str | None, bytes]]]:
    """Like iter_sse for an aiohttp StreamReader, one list per network read: the events that
    read completed (never empty)."""
    async for batch in _batches(stream.iter_any(), b""):
        yield batch


def _normalise(buf: bytes) -> bytes:
    # CRLF upstreams: one C-level replace per read; a pair split across reads is joined first.
    return buf.replace(b"\r\n", b"\n") if b"\r" in buf else buf


async def _batches(reads, buf: bytes) -> AsyncIterator[list[tuple[str | None, bytes]]]:
    """The events of `buf` and then of each read from `reads` (an async iterator of bytes), one
    list per read that completed any."""
    first = True
    while True:
        if not first:
            try:
                chunk = await reads.__anext__()
            except StopAsyncIteration:
                break
            buf = _normalise(buf + chunk)
        first = False
        batch = []
        pos = 0      # slice once per read: cutting the front off per event copied the rest each time
        while True:
            i = buf.find(b"\n\n", pos)
            if i < 0:
                break
            ev = parse_block(buf[pos:i])
            pos = i + 2
            if ev is not None:
                batch.append(ev)
        if pos:
            buf = buf[pos:]
        if batch:
            yield batch
    if buf.strip():
        ev = parse_block(buf.rstrip(b"\r\n"))
        if ev is not None:
            yield [ev]


def parse_events(chunk: bytes) -> list[dict]:
    """The parsed `data:` of each event in `chunk` (whole events, `\\n\\n`-separated), in one orjson
    call as a JSON array. The usual shape (every event `event: NAME` then one `data:` line) is
    checked and cut with C-level bytes operations only; anything else goes block by block."""
    lines = chunk.split(b"\n")
    k = len(lines) // 3
    if len(lines) == 3 * k + 1 and k and not lines[-1] and not any(lines[2::3]):
        names = b"\n".join(lines[0:-1:3])
        datas = b"\n".join(lines[1::3])
        # A line holds no \n, so each "\n<field>: " below starts a line: counting them checks every line.
        if (names.startswith(b"event: ") and names.count(b"\nevent: ") == k - 1
                and datas.startswith(b"data: ") and datas.count(b"\ndata: ") == k - 1):
            return orjson.loads(b"[" + datas[6:].replace(b"\ndata: ", b",") + b"]")
    datas = []
    for block in chunk.split(b"\n\n"):
        if block:
            ev = parse_block(block)
            if ev is not None and ev[1]:
                datas.append(ev[1])
    if not datas:
        return []
    return orjson.loads(b"[" + b",".join(datas) + b"]")


class SSEBody:
    """An upstream's SSE body, read once, in one of two ways.

    Iterated, it yields RawEvents like any canonical event stream (stages, converting renderers,
    gathering a JSON answer). `reads()` instead yields the upstream's bytes, one piece per network
    read and always whole events, for a client that speaks the upstream's protocol: the proxy
    writes them before parsing anything, so the client's first byte does not wait for the
    hundreds of events a read may hold. `peek()` parses only the first event (retry and fallback
    must see it before the client is committed); `verbatim` then says whether the bytes are in
    the shape clients need (`event:` lines, message_start first), else only iteration is offered.
    """

    def __init__(self, content, protocol: str, release=None):
        self.protocol = protocol
        self.first: dict | None = None
        self.verbatim = False
        self._reads = content.iter_any().__aiter__()
        self._release = release
        self._buf = b""
        self._gen = None
        self._mode: str | None = None

    async def _more(self) -> bool:
        try:
            chunk = await self._reads.__anext__()
        except StopAsyncIteration:
            return False
        self._buf = _normalise(self._buf + chunk)
        return True

    async def peek(self) -> dict | None:
        """The first event, parsed (None when the stream ends without one); its bytes stay buffered."""
        if self.first is not None:
            return self.first
        while True:
            buf = self._buf
            i = buf.find(b"\n\n")
            if i < 0:
                if await self._more():
                    continue
                if not buf.strip():
                    return None
                i = len(buf)      # a last event without its blank line
            ev = parse_block(buf[:i].rstrip(b"\n"))
            if ev is None or not ev[1]:
                self._buf = buf[i + 2:]       # comments and empty events before the first are dropped
                continue
            self.first = orjson.loads(ev[1])
            self.verbatim = (ev[0] == "message_start" and buf.startswith(b"event: message_start\ndata: ")
                             and self.first.get("type") == "message_start")
            return self.first

    def __aiter__(self):
        return self._reader("events", self._events)

    async def _events(self):
        first = self.first
        try:
            async for batch in _batches(self._reads, self._buf):
                last = len(batch) - 1
                for i, (_event, data) in enumerate(batch):
                    if not data:
                        continue
                    parsed = orjson.loads(data) if first is None else first
                    first = None
                    # RawEvent keeps the upstream's bytes: an Anthropic client gets them unchanged.
                    yield RawEvent(parsed, data, i < last)
        finally:
            self._done()

    def reads(self, feed=None) -> AsyncIterator[bytes]:
        """The body from the first event on, as it arrives: each piece ends at an event boundary
        (the part of an event still on the way is held for the next read). `feed(events)` gets
        each piece's events, parsed once the consumer has dealt with its bytes; a piece that does
        not parse raises then (ValueError), as the event path would have before writing it."""
        return self._reader("bytes", lambda: self._bytes(feed))

    def _reader(self, mode: str, make):
        # One body, read one way: events parsed from bytes already handed on cannot be had, and so on.
        if self._gen is None:
            self._gen, self._mode = make(), mode
            self.verbatim = self.verbatim and mode == "bytes"
        elif self._mode != mode:
            raise RuntimeError(f"this stream is already being read as {self._mode}")
        return self._gen

    async def _bytes(self, feed):
        try:
            buf, self._buf = self._buf, b""
            scanned = 0
            while True:
                i = buf.rfind(b"\n\n", scanned)
                if i >= 0:
                    out, buf = (buf, b"") if i + 2 == len(buf) else (buf[:i + 2], buf[i + 2:])
                    yield out
                    if feed is not None:
                        feed(parse_events(out))
                scanned = max(0, len(buf) - 1)
                try:
                    chunk = await self._reads.__anext__()
                except StopAsyncIteration:
                    break
                buf = _normalise(buf + chunk)
            tail = buf.rstrip(b"\n")
            if tail.strip():
                # A last event without its blank line is written only once it reads as a whole event.
                evs = parse_events(tail)
                if evs or parse_block(tail) is not None:
                    yield tail + b"\n\n"
                    if feed is not None:
                        feed(evs)
        finally:
            self._done()

    def _done(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    async def aclose(self) -> None:
        if self._gen is not None:
            await self._gen.aclose()
        self._done()


def sse_event(event: str, payload: dict) -> bytes:
    """An Anthropic-style event: `event:` line then `data:` (both SDKs need the event line)."""
    data = payload.raw if type(payload) is RawEvent else orjson.dumps(payload)
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def sse_data(payload: dict | bytes) -> bytes:
    """An OpenAI-style event: `data:` only."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return b"data: " + body + b"\n\n"


async def finish_stream(out) -> None:
    """End a streamed response. Clients such as Codex close the connection as soon as they have
    the terminal event; that is a finished answer, not a disconnect."""
    try:
        await out.write_eof()
    except ConnectionError:
        pass
