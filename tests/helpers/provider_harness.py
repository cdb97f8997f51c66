"""Start a provider double and a Lynkr in front of it; post Anthropic requests; check SSE."""
from __future__ import annotations

import aiohttp
import orjson

from tests.conftest import start_app
from tests.helpers.provider_doubles import DOUBLES, provider_yaml

KIND_DOUBLE = {"azure_openai": ("openai", {"azure": True}), "vertex": ("gemini", {"vertex": True})}


def make_double(kind: str, script=None, **kw):
    base, extra = KIND_DOUBLE.get(kind, (kind, {}))
    return DOUBLES[base](script, **{**extra, **kw})


async def serve_double(double, runners: list):
    runner, url = await start_app(double.app())
    double.url = url
    runners.append(runner)
    return url


def pipeline(providers: str, stages: str, models: str = "") -> str:
    return (f"version: 1\nname: t\nproviders:\n{providers}" + (f"models:\n{models}" if models else "")
            + f"stages:\n{stages}telemetry: {{enabled: false}}\n")


async def post(url: str, body: dict, headers: dict | None = None, timeout: float = 30):
    """(status, headers, parsed JSON or list of (event, data) for SSE)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
        async with s.post(url + "/v1/messages", data=orjson.dumps(body),
                          headers={"content-type": "application/json", "anthropic-version": "2023-06-01",
                                   **(headers or {})}) as r:
            raw = await r.read()
            if r.headers.get("content-type", "").startswith("text/event-stream"):
                return r.status, r.headers.copy(), parse_sse(raw)
            return r.status, r.headers.copy(), orjson.loads(raw)


def parse_sse(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        ev, data = None, None
        for line in frame.split("\n"):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                data = orjson.loads(line[6:])
        assert ev is not None, f"SSE frame without event line: {frame!r}"
        out.append((ev, data))
    return out


def check_stream(events: list[tuple[str, dict]]) -> dict:
    """Assert the Anthropic stream rules clients enforce; return the assembled message."""
    from lynkr.wire.events import MessageAccumulator

    names = [e for e, _ in events if e != "ping"]
    assert names[0] == "message_start", names
    if names[-1] == "error":
        return {"error": events[-1][1]}
    assert names[-1] == "message_stop", names
    assert names[-2] == "message_delta", names
    open_idx = None
    expect = 0
    for e, d in events:
        assert e == d["type"], (e, d)
        if e == "content_block_start":
            assert open_idx is None, "a block opened while another is open"
            assert d["index"] == expect, (d["index"], expect)
            open_idx = d["index"]
        elif e == "content_block_delta":
            assert d["index"] == open_idx
        elif e == "content_block_stop":
            assert d["index"] == open_idx
            open_idx, expect = None, expect + 1
    assert open_idx is None
    delta = [d for e, d in events if e == "message_delta"][-1]
    assert isinstance(delta["usage"]["output_tokens"], int)
    acc = MessageAccumulator()
    for _e, d in events:
        acc.feed(d)
    return acc.message


def check_no_error_mid_block(events):
    """A stream that failed: it still starts with message_start and ends with one error event."""
    names = [e for e, _ in events if e != "ping"]
    assert names[0] == "message_start"
    assert names[-1] == "error", names
    assert names.count("error") == 1
    return events[-1][1]
