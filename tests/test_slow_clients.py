"""One slow or greedy client must not hurt the others: a real `lynkr run` under the attacks of a
client that trickles its headers or bodies, or asks for huge token counts, keeps serving everyone
else, and the attacker's connections end by the deadlines of `server.timeouts`."""
import asyncio
import resource

import aiohttp
import orjson
import pytest

from tests.helpers.anthropic_upstream import AnthropicUpstream
from tests.helpers.reliability_util import BODY, LynkrProcess, lynkr_app, post, start_upstream

PIPE = """
version: 1
server: {%s}
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
telemetry: {path: "%s"}
"""

# The attacker's connections come from another loopback address, as another machine's would.
ATTACKER = "127.0.0.2"
SLOW_BODIES = 2000
NORMAL = 40


@pytest.fixture
async def upstream():
    up = AnthropicUpstream()
    runner = await start_upstream(up)
    yield up
    await runner.cleanup()


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))


async def _slow_body(port: int, path: str = "/v1/messages", source: str | None = ATTACKER):
    """Connect (from the attacker's address), send complete headers and one byte of a 10 kB body;
    None when the connection could not be made."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(source, 0) if source else None)
    except OSError:
        if source is None:
            raise
        return None
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: 10000\r\n\r\n{{".encode())
    try:
        await writer.drain()
    except OSError:
        pass
    return reader, writer


async def test_slow_bodies_do_not_hurt_well_behaved_clients(upstream, tmp_path):
    """2,000 connections that send headers and then one byte of body (as an attacker trickling
    1 byte every few seconds would) are held or refused at the door; meanwhile 40 normal requests
    from another client all get 200 and /health/ready stays 200 (no load shedding for everyone)."""
    _raise_fd_limit(SLOW_BODIES + 1024)
    p = tmp_path / "pipeline.yaml"
    p.write_text(PIPE % ("", upstream.url, tmp_path / "t.duckdb"))
    lynkr = LynkrProcess(p)
    attack: list = []
    try:
        await lynkr.ready()
        attack = await asyncio.gather(*(_slow_body(lynkr.port) for _ in range(SLOW_BODIES)))
        await lynkr.ready()     # the attack is in place (its accept burst may lag the loop a moment)
        async with aiohttp.ClientSession() as s:
            async def normal(i):
                async with s.post(lynkr.url + "/v1/messages", json={**BODY, "metadata": {"user_id": f"u{i}"}}) as r:
                    return r.status
            statuses = await asyncio.gather(*(normal(i) for i in range(NORMAL)))
            async with s.get(lynkr.url + "/health/ready") as r:
                ready = r.status
        assert statuses == [200] * NORMAL
        assert ready == 200
        held = sum(1 for a in attack if a is not None and not a[0].at_eof())
        print(f"{SLOW_BODIES} slow bodies: {held} connections held open by the server, "
              f"{SLOW_BODIES - held} refused or closed; {NORMAL}/{NORMAL} normal requests answered 200")
        assert 0 < held <= 256        # the attack took place; max_connections_per_peer's default
    finally:
        for a in attack:
            if a is not None:
                a[1].close()
        lynkr.kill()


async def test_header_body_and_idle_deadlines(upstream, write_pipeline, tmp_path):
    """A request whose headers stop coming is closed after headers_s; one whose body stops is
    answered 408 in the client's shape after body_s; an idle keep-alive connection is closed after
    idle_s. Nothing waits on aiohttp's defaults (which have no header or body deadline)."""
    p = tmp_path / "pipeline.yaml"
    p.write_text(PIPE % ("timeouts: {headers_s: 0.5, body_s: 0.5, idle_s: 1}", upstream.url, tmp_path / "t.duckdb"))
    lynkr = LynkrProcess(p)
    try:
        await lynkr.ready()
        # headers begun, never finished
        r, w = await asyncio.open_connection("127.0.0.1", lynkr.port)
        w.write(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await w.drain()
        async with asyncio.timeout(30):
            assert await r.read() == b""
        w.close()
        # headers complete, body never finished
        r, w = await _slow_body(lynkr.port, source=None)
        async with asyncio.timeout(30):
            raw = await r.read()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), raw[:200]
        assert orjson.loads(body)["error"]["type"] == "timeout_error"
        w.close()
        # nothing sent at all
        r, w = await asyncio.open_connection("127.0.0.1", lynkr.port)
        async with asyncio.timeout(30):
            assert await r.read() == b""
        w.close()
        # and the server still answers
        assert (await post(lynkr.url))[0] == 200
    finally:
        lynkr.kill()


async def test_big_token_counts_do_not_starve_small_ones(upstream, write_pipeline, tmp_path):
    """Six concurrent count_tokens on large bodies run in their own lane: a small count sent after
    them is answered while the large ones are still being counted."""
    # Shedding off: six counts on a 2-core CI machine read as event-loop lag; the lanes are tested.
    p = write_pipeline(PIPE % ("shed: {enabled: false}", upstream.url, tmp_path / "t.duckdb"))
    words = " ".join(f"word{i} function_{i % 97}() {{ return x{i}; }}" for i in range(120_000))
    big = {"messages": [{"role": "user", "content": words}]}
    small = {"messages": [{"role": "user", "content": "how many tokens is this?"}]}
    async with lynkr_app(p, tmp_path) as (_app, url):
        done: list[str] = []

        async def count(name, body):
            status, _h, raw = await post(url, "/v1/messages/count_tokens", body)
            done.append(name)
            return status, orjson.loads(raw)

        large = [asyncio.create_task(count(f"large{i}", big)) for i in range(6)]
        await asyncio.sleep(0.2)         # let the large ones start; ordering, not timing, is asserted
        status, out = await count("small", small)
        assert status == 200 and out["input_tokens"] > 0
        assert len([n for n in done if n.startswith("large")]) < 6, done
        results = await asyncio.gather(*large)
    assert all(s in (200, 429) for s, _ in results)
    assert any(s == 200 for s, _ in results)
