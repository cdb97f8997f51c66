"""Micro-benchmarks of the wire layer. Not a test; run `python -m tests.helpers.wire_bench`.

1. conversion cost on the fixture bodies (Claude Code 67 KB, Codex 46 KB);
2. the OpenAI chat stream translator and the accumulator, per chunk/event;
3. a 2 000-event Anthropic stream fetched directly from the scripted upstream and through Lynkr
   (Anthropic client → Anthropic upstream, passthrough bytes), wall time per run.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from lynkr.wire import anthropic, openai_chat, openai_responses
from lynkr.wire.events import MessageAccumulator

ROOT = Path(__file__).resolve().parents[2]
FIX = Path(os.environ.get("LYNKR_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def per_call(f, n=300) -> float:
    f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e6


async def stream_through(n_events: int, runs: int = 15) -> tuple[float, float]:
    from lynkr.engine.runtime import Engine
    from lynkr.server.app import create_app
    from tests.conftest import start_app
    from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message

    text = "word " * (n_events * 8 // 5 - 8)     # the upstream helper sends 8-character deltas
    up = AnthropicUpstream(lambda body: text_message(text))
    up_runner, up_url = await start_app(up.app())
    tmp = Path(tempfile.mkdtemp())
    (tmp / "p.yaml").write_text(f"""version: 1
server: {{shed: {{enabled: false}}}}
telemetry: {{enabled: false}}
providers:
  up: {{kind: anthropic, base_url: "{up_url}", strip_billing: false}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
""")
    engine = Engine(str(tmp / "p.yaml"), watch=False, telemetry_path=str(tmp / "t.duckdb"))
    await engine.start()
    runner, url = await start_app(create_app(engine, manage_engine=False))
    body = {"model": "c", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    out = {}
    async with aiohttp.ClientSession() as s:
        for name, base in (("direct", up_url), ("lynkr", url)):
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                async with s.post(base + "/v1/messages", json=body) as r:
                    await r.read()
                times.append(time.perf_counter() - t)
            out[name] = statistics.median(times) * 1000
    await runner.cleanup()
    await engine.stop()
    await up_runner.cleanup()
    return out["direct"], out["lynkr"]


async def render_cost(n: int = 20000) -> float:
    """Anthropic client, Anthropic upstream: RawEvents in, bytes out (a stand-in response object)."""
    import orjson
    from aiohttp.test_utils import make_mocked_request

    from lynkr.exchange import Exchange, Response
    from lynkr.wire.sse import RawEvent
    from tests.helpers.anthropic_upstream import sse, text_message

    frames = sse(text_message("word " * (n * 8 // 5)))
    datas = [f.split(b"data: ", 1)[1].rstrip(b"\n") for f in frames]

    class Out:
        def __init__(self, *a, **kw):
            self.n = 0

        async def prepare(self, request):
            pass

        async def write(self, b):
            self.n += len(b)

        async def write_eof(self):
            pass

    async def events():
        for d in datas:
            yield RawEvent(orjson.loads(d), d)
    import lynkr.wire.anthropic as mod
    real, mod.web.StreamResponse = mod.web.StreamResponse, Out
    try:
        x = Exchange.new("anthropic", {"messages": [], "stream": True})
        x.response = Response(events=events())
        t = time.perf_counter()
        await mod.render(make_mocked_request("POST", "/"), x)
        return (time.perf_counter() - t) / len(datas) * 1e6
    finally:
        mod.web.StreamResponse = real


def main() -> None:
    cc = json.loads((FIX / "claude-code/fix-negative-stock/req_004.json").read_text())["body"]
    cx = json.loads((FIX / "codex/list-files/req_001.json").read_text())["body"]
    c = anthropic.to_canonical(cc)
    r = openai_responses.to_canonical(cx)
    print(f"anthropic.to_canonical, 67 KB Claude Code body   {per_call(lambda: anthropic.to_canonical(cc)):8.1f} µs")
    print(f"openai_chat.from_canonical, same body             {per_call(lambda: openai_chat.from_canonical(c, 'm')):8.1f} µs")
    print(f"openai_responses.to_canonical, 46 KB Codex body   {per_call(lambda: openai_responses.to_canonical(cx)):8.1f} µs")
    print(f"openai_responses.from_canonical, same body        {per_call(lambda: openai_responses.from_canonical(r, 'm')):8.1f} µs")

    chunks = [{"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]}
              for _ in range(5000)]

    async def translate():
        async def src():
            for ch in chunks:
                yield ch
        n = 0
        async for _ in openai_chat.events_from_openai(src()):
            n += 1
        return n
    asyncio.run(translate())
    t = time.perf_counter()
    asyncio.run(translate())
    print(f"events_from_openai, per chunk                     {(time.perf_counter() - t) / len(chunks) * 1e6:8.2f} µs")

    evs = [{"type": "message_start", "message": {"id": "m", "content": [], "usage": {}}},
           {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
    evs += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "abcd"}}] * 20000
    evs += [{"type": "content_block_stop", "index": 0}, {"type": "message_stop"}]
    acc = MessageAccumulator()
    t = time.perf_counter()
    for e in evs:
        acc.feed(e)
    print(f"MessageAccumulator.feed, per event (20k deltas)   {(time.perf_counter() - t) / len(evs) * 1e6:8.2f} µs")

    print(f"anthropic.render, per upstream event, no network {asyncio.run(render_cost()):8.2f} µs")

    from tests.helpers.anthropic_upstream import sse, text_message
    n = len(sse(text_message("word " * (2000 * 8 // 5 - 8))))
    direct, through = asyncio.run(stream_through(2000))
    print(f"{n}-event Anthropic stream, median of 15: direct {direct:.1f} ms, through Lynkr {through:.1f} ms "
          f"(+{through - direct:.1f} ms, {(through - direct) / n * 1000:.1f} µs/event)")


if __name__ == "__main__":
    main()
