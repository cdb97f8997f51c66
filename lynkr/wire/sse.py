"""Server-sent events: parse an upstream's stream, format ours."""
from __future__ import annotations

from typing import AsyncIterator

import orjson

__all__ = ["iter_sse", "iter_sse_batches", "sse_event", "sse_data", "RawEvent", "finish_stream"]


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


def _parse_block(block: bytes) -> tuple[str | None, bytes] | None:
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
        ev = _parse_block(b"\n".join(lines)) if lines else None
        lines = []
        if ev is not None:
            yield ev
    if lines and (ev := _parse_block(b"\n".join(lines))) is not None:
        yield ev


async def iter_sse_batches(stream) -> AsyncIterator[list[tuple[str | None, bytes]]]:
    """Like iter_sse for an aiohttp StreamReader, one list per network read: the events that
    read completed (never empty)."""
    buf = b""
    async for chunk in stream.iter_any():
        buf += chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        batch = []
        pos = 0      # slice once per read: cutting the front off per event copied the rest each time
        while True:
            i = buf.find(b"\n\n", pos)
            if i < 0:
                break
            ev = _parse_block(buf[pos:i])
            pos = i + 2
            if ev is not None:
                batch.append(ev)
        if pos:
            buf = buf[pos:]
        if batch:
            yield batch
    if buf.strip():
        ev = _parse_block(buf.rstrip(b"\r\n"))
        if ev is not None:
            yield [ev]


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
