"""Request-path cost of the provider layer: canonical → each provider's body for a real Claude Code
request (60 KB, 12 tools, 4 tool round trips), and the per-event cost of the resilience wrappers.

    python -m tests.helpers.provider_bench
"""
from __future__ import annotations

import asyncio
import json
import time

from tests.conftest import FIXTURES


def conversions(n: int = 300) -> None:
    from lynkr.providers.anthropic import AnthropicProvider
    from lynkr.providers.bedrock import to_converse
    from lynkr.providers.gemini import to_gemini
    from lynkr.providers.ollama import to_ollama
    from lynkr.providers.openai import OpenAIProvider
    from lynkr.wire.anthropic import to_canonical

    raw = json.loads((FIXTURES / "claude-code" / "fix-negative-stock" / "req_004.json").read_text())["body"]
    req = to_canonical(raw)
    oa = OpenAIProvider("o", {"kind": "openai", "base_url": "https://openrouter.ai/api/v1", "api_key": "k"})
    an = AnthropicProvider("a", {"kind": "anthropic", "base_url": "https://api.anthropic.com"})
    fns = {"anthropic": lambda: an.build(req, "m"), "openai": lambda: oa.build(req, "m"),
           "ollama": lambda: to_ollama(req, "m", num_ctx=65536), "bedrock": lambda: to_converse(req),
           "gemini": lambda: to_gemini(req)}
    for kind, f in fns.items():
        for _ in range(20):
            f()
        t = time.perf_counter()
        for _ in range(n):
            f()
        print(f"convert {kind:10s} {(time.perf_counter() - t) / n * 1e6:7.0f} µs/request")


async def wrappers(n: int = 20000) -> None:
    from lynkr.exchange import Response
    from lynkr.providers.resilience import Breaker, peek_first, stream_guard

    ev = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}

    async def source():
        for _ in range(n):
            yield ev

    t = time.perf_counter()
    async for _ in source():
        pass
    bare = time.perf_counter() - t
    t = time.perf_counter()
    resp = await peek_first(Response(events=source()), 10)
    async for _ in stream_guard(resp.events, "p", Breaker()):
        pass
    wrapped = time.perf_counter() - t
    print(f"stream wrappers   {(wrapped - bare) / n * 1e9:7.0f} ns/event added ({n} events)")


if __name__ == "__main__":
    conversions()
    asyncio.run(wrappers())
