"""The recorded Claude Code and Codex sessions in each client protocol, sent through a running
Lynkr turn by turn, with the share of each turn's input tokens the upstream read from its cache,
as the client saw it in its own protocol's usage fields."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import orjson

from lynkr.cli.replay import CLIENT_PATHS as PATHS
from lynkr.cli.replay import as_client

_DROP = {"content-length", "host", "x-api-key", "authorization", "accept-encoding", "connection"}


def recorded(folder: Path) -> tuple[str, list[dict], dict]:
    """(client protocol, bodies in turn order, headers) of one fixture session."""
    reqs = [json.loads(p.read_text()) for p in sorted(folder.glob("req_*.json"))]
    proto = "responses" if reqs[0]["path"].startswith("/v1/responses") else "anthropic"
    headers = {k: v for k, v in reqs[0]["headers"].items() if k.lower() not in _DROP}
    return proto, [r["body"] for r in reqs], headers


def converted(proto: str, bodies: list[dict], to: str) -> list[dict]:
    """The session as another client would have sent it (that client sets no cache markers)."""
    return [as_client(PATHS[proto], b, to)[1] for b in bodies]


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


async def _send(s: aiohttp.ClientSession, url: str, body: dict, headers: dict, proto: str) -> dict:
    """One turn; a load-shed answer (a busy shared test machine) is retried as the clients do."""
    for _ in range(10):
        async with s.post(url, data=orjson.dumps(body), headers=headers) as r:
            if r.status in (503, 529) and r.headers.get("retry-after"):
                await asyncio.sleep(float(r.headers["retry-after"]))
                continue
            assert r.status == 200, await r.text()
            return await _usage(r, proto)
    raise AssertionError("Lynkr kept shedding load")


async def replay(url: str, proto: str, bodies: list[dict], headers: dict) -> list[dict]:
    """Each turn sent in order; per turn the client's usage and its cache-read share."""
    rows = []
    headers = {**headers, "content-type": "application/json", "x-api-key": "sk-test", "authorization": "Bearer sk-test"}
    async with aiohttp.ClientSession() as s:
        for body in bodies:
            usage = await _send(s, url + PATHS[proto], body, headers, proto)
            share, total = read_share(usage, proto)
            rows.append({"usage": usage, "share": share, "input": total})
    return rows
