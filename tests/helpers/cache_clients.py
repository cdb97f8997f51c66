"""Cache tests: a pipeline with the caches in front of a scripted Anthropic upstream, and one
request helper per client protocol that returns (status, headers, the answer's text)."""
from __future__ import annotations

import asyncio

import aiohttp
import orjson

PIPE = """
version: 1
state_dir: "{state}"
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
{stages}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
telemetry: {{path: "{state}/telemetry.duckdb"}}
"""


def pipeline(url: str, state, stages: str) -> str:
    return PIPE.format(url=url, state=state, stages=stages)


def _sse_events(text: str) -> list[tuple[str | None, dict | str]]:
    out = []
    for chunk in text.split("\n\n"):
        name, data = None, None
        for line in chunk.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
        if data is None:
            continue
        out.append((name, data if data == "[DONE]" else orjson.loads(data)))
    return out


async def ask(session: aiohttp.ClientSession, url: str, protocol: str, question: str, *, stream: bool = False,
              model: str = "claude-test", headers: dict | None = None, extra: dict | None = None):
    """Ask `question` in `protocol`; returns (status, headers, text, events-or-body)."""
    if protocol == "anthropic":
        body = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": question}], "stream": stream}
        path = "/v1/messages"
    elif protocol == "openai_chat":
        body = {"model": model, "messages": [{"role": "user", "content": question}], "stream": stream}
        path = "/v1/chat/completions"
    else:
        body = {"model": model, "input": question, "stream": stream}
        path = "/v1/responses"
    body.update(extra or {})
    async with session.post(url + path, json=body, headers=headers or {}) as r:
        raw = await r.text()
        if r.status != 200:
            return r.status, r.headers, raw, None
        if not stream:
            data = orjson.loads(raw)
            return r.status, r.headers, _text_of_body(protocol, data), data
        events = _sse_events(raw)
        return r.status, r.headers, _text_of_events(protocol, events), events


def _text_of_body(protocol: str, data: dict) -> str:
    if protocol == "anthropic":
        assert data["type"] == "message" and data["role"] == "assistant" and data["stop_reason"] == "end_turn"
        return "".join(b["text"] for b in data["content"] if b["type"] == "text")
    if protocol == "openai_chat":
        assert data["object"] == "chat.completion"
        choice = data["choices"][0]
        assert choice["finish_reason"] == "stop"
        return choice["message"]["content"]
    assert data["object"] == "response" and data["status"] == "completed"
    return "".join(c["text"] for item in data["output"] if item["type"] == "message"
                   for c in item["content"] if c["type"] == "output_text")


def _text_of_events(protocol: str, events: list) -> str:
    if protocol == "anthropic":
        names = [n for n, _ in events]
        assert names[0] == "message_start" and names[-1] == "message_stop", names
        assert all(n == d["type"] for n, d in events), "every SSE event needs a matching event: line"
        stop = [d for n, d in events if n == "message_delta"][-1]["delta"]["stop_reason"]
        assert stop == "end_turn"
        return "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "text_delta")
    if protocol == "openai_chat":
        assert events[-1][1] == "[DONE]"
        chunks = [d for _n, d in events[:-1]]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert any(ch.get("finish_reason") == "stop" for c in chunks for ch in c.get("choices") or [])
        return "".join(ch["delta"].get("content") or "" for c in chunks for ch in c.get("choices") or [])
    types = [d["type"] for _n, d in events]
    assert types[0] == "response.created" and types[-1] == "response.completed", types
    assert types.index("response.output_item.added") < types.index("response.output_text.delta")
    done = events[-1][1]["response"]
    assert isinstance(done["usage"]["input_tokens"], int) and isinstance(done["usage"]["output_tokens"], int)
    return "".join(d["delta"] for _n, d in events if d["type"] == "response.output_text.delta")


async def settle(engine) -> None:
    """Wait for `after` hooks (the cache store) of finished requests."""
    for _ in range(200):
        if not engine.finishing:
            return
        await asyncio.sleep(0.01)
