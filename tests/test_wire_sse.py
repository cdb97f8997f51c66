"""The SSE reader gives the same events whether the network delivers whole lines or arbitrary
chunks (split inside lines, inside CRLF pairs, several events per chunk)."""
import random

from lynkr.wire.sse import iter_sse

STREAM = (b": OPENROUTER PROCESSING\n\n"
          b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
          b"data: {\"a\":1}\r\n\r\n"
          b"event: ping\ndata: {\"type\": \"ping\"}\n\n"
          b"data: line one\ndata: line two\n\n"
          b"event: only-name\n\n"
          b":comment\ndata: [DONE]\n\n"
          b"data: {\"tail\":true}")
EXPECTED = [("message_start", b'{"type":"message_start"}'), (None, b'{"a":1}'), ("ping", b'{"type": "ping"}'),
            (None, b"line one\nline two"), ("only-name", b""), (None, b"[DONE]"), (None, b'{"tail":true}')]


class Chunked:
    def __init__(self, data: bytes, cuts: list[int]):
        self.parts = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]

    async def iter_any(self):
        for p in self.parts:
            if p:
                yield p


async def lines(data: bytes):
    for line in data.splitlines(keepends=True):
        yield line


async def collect(it):
    return [e async for e in it]


async def test_line_reader():
    assert await collect(iter_sse(lines(STREAM))) == EXPECTED


async def test_chunk_reader_any_split():
    rnd = random.Random(7)
    for _ in range(300):
        cuts = sorted(rnd.sample(range(1, len(STREAM)), rnd.randint(0, 25)))
        assert await collect(iter_sse(Chunked(STREAM, cuts))) == EXPECTED
