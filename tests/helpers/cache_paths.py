"""The recorded Claude Code and Codex sessions in each client protocol, sent through a running
Lynkr turn by turn, with the share of each turn's input tokens the upstream read from its cache,
as the client saw it in its own protocol's usage fields."""
from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import orjson

from lynkr.wire import anthropic as anthropic_wire
from lynkr.wire import openai_chat, openai_responses
from lynkr.wire.canonical import for_anthropic_upstream

PATHS = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses"}
_DROP = {"content-length", "host", "x-api-key", "authorization", "accept-encoding", "connection"}


def recorded(folder: Path) -> tuple[str, list[dict], dict]:
    """(client protocol, bodies in turn order, headers) of one fixture session."""
    reqs = [json.loads(p.read_text()) for p in sorted(folder.glob("req_*.json"))]
    proto = "responses" if reqs[0]["path"].startswith("/v1/responses") else "anthropic"
    headers = {k: v for k, v in reqs[0]["headers"].items() if k.lower() not in _DROP}
    return proto, [r["body"] for r in reqs], headers


def _canonical(proto: str, body: dict) -> dict:
    return (anthropic_wire if proto == "anthropic" else openai_responses).to_canonical(body)


def converted(proto: str, bodies: list[dict], to: str) -> list[dict]:
    """The session as another client would have sent it (that client sets no cache markers)."""
    if to == proto:
        return bodies
    out = []
    for b in bodies:
        c = _canonical(proto, b)
        model = b.get("model")
        if to == "anthropic":
            out.append(_no_markers(for_anthropic_upstream(c, "responses")))
        elif to == "chat":
            out.append(openai_chat.from_canonical(c, model))
        else:
            out.append(openai_responses.from_canonical(c, model))
    return out


def _no_markers(value):
    if isinstance(value, dict):
        return {k: _no_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_no_markers(v) for v in value]
    return value


async def _usage(resp: aiohttp.ClientResponse, proto: str) -> dict:
    """The usage the client got, streamed or not."""
    if "text/event-stream" not in resp.headers.get("content-type", ""):
        data = await resp.json()
        return data.get("usage") or {}
    usage: dict = {}
    async for line in resp.content:
        if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
            continue
        ev = orjson.loads(line[5:])
        if proto == "anthropic":
            if ev.get("type") == "message_start":
                usage.update(ev["message"].get("usage") or {})
            elif ev.get("type") == "message_delta":
                usage.update({k: v for k, v in (ev.get("usage") or {}).items() if v is not None})
        elif proto == "chat" and ev.get("usage"):
            usage = ev["usage"]
        elif proto == "responses" and ev.get("type") == "response.completed":
            usage = ev["response"].get("usage") or {}
    return usage


def read_share(usage: dict, proto: str) -> tuple[float, int]:
    """(share of the turn's input read from the provider's cache, the turn's input tokens)."""
    if proto == "anthropic":
        total = (usage.get("input_tokens") or 0) + (usage.get("cache_read_input_tokens") or 0) + \
                (usage.get("cache_creation_input_tokens") or 0)
        read = usage.get("cache_read_input_tokens") or 0
    elif proto == "chat":
        total, read = usage.get("prompt_tokens") or 0, (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    else:
        total, read = usage.get("input_tokens") or 0, (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
    return (read / total if total else 0.0), total


async def replay(url: str, proto: str, bodies: list[dict], headers: dict) -> list[dict]:
    """Each turn sent in order; per turn the client's usage and its cache-read share."""
    rows = []
    async with aiohttp.ClientSession() as s:
        for body in bodies:
            async with s.post(url + PATHS[proto], data=orjson.dumps(body),
                              headers={**headers, "content-type": "application/json",
                                       "x-api-key": "sk-test", "authorization": "Bearer sk-test"}) as r:
                assert r.status == 200, await r.text()
                usage = await _usage(r, proto)
            share, total = read_share(usage, proto)
            rows.append({"usage": usage, "share": share, "input": total})
    return rows
