"""The benchmarks' fake upstream (tests/helpers/fake_upstream.py, HTTP on asyncio's Protocol) speaks
HTTP/1.1 as the proxies under test need: keep-alive, Content-Length and chunked request bodies,
a chunked SSE answer, requests pipelined on one connection. The figures depend on it."""
import asyncio

import aiohttp
import orjson

from tests.helpers import fake_upstream
from tests.conftest import free_port


async def _serving(chunks: int = 5):
    port = free_port()
    task = asyncio.create_task(fake_upstream.serve_raw(port, chunks))
    for _ in range(100):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return task, f"http://127.0.0.1:{port}"
        except OSError:
            await asyncio.sleep(0.01)
    raise TimeoutError


async def test_answers_messages_and_streams_on_one_kept_alive_connection():
    task, url = await _serving()
    try:
        conn = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=conn) as s:
            big = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 200_000}]})
            async with s.post(url + "/v1/messages", data=big) as r:
                assert r.status == 200 and (await r.json())["content"][0]["text"] == "ok"
            async with s.post(url + "/v1/messages", json={"stream": True}) as r:
                assert r.headers["content-type"] == "text/event-stream"
                events = [line for line in (await r.text()).splitlines() if line.startswith("event: ")]
            assert events[0] == "event: message_start" and events[-1] == "event: message_stop"
            assert events.count("event: content_block_delta") == 5

            async def chunked():
                yield b'{"stream":'
                yield b' false, "messages": []}'
            async with s.post(url + "/v1/messages", data=chunked()) as r:
                assert (await r.json())["id"] == "msg_bench"
    finally:
        task.cancel()


async def test_pipelined_requests_are_answered_in_order():
    task, url = await _serving()
    try:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        one = b'{"stream":false}'
        req = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(one), one)
        writer.write(req * 3)
        got = b""
        while got.count(b"msg_bench") < 3:
            got += await asyncio.wait_for(reader.read(65536), 5)
        assert got.count(b"HTTP/1.1 200 OK") == 3
        writer.close()
    finally:
        task.cancel()
