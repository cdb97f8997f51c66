"""Routes of the client protocols. Each maps a path to a lynkr.wire module.

Chat completions and Responses match with or without the `/v1` prefix (clients differ on whether
their base URL ends in /v1); the query string (`?beta=true`) is ignored.
"""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from lynkr.errors import ProxyError
from lynkr.wire import anthropic, openai_chat, openai_responses
from lynkr.wire import embeddings as embed_wire
from lynkr.wire.validate import validate_request
from lynkr.server.handler import DEFAULT_MAX_BODY, pipeline_for, read_json, read_raw_json, serve

__all__ = ["setup", "model_ids"]


async def messages(request: web.Request) -> web.StreamResponse:
    return await serve(request, anthropic)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await serve(request, openai_chat)


async def responses(request: web.Request) -> web.StreamResponse:
    return await serve(request, openai_responses)


def _server(request: web.Request) -> dict:
    p = request.app["engine"].current
    return (p.config.get("server") or {}) if p is not None else {}


def _max_body(request: web.Request) -> int:
    return _server(request).get("max_body_bytes", DEFAULT_MAX_BODY)


class CountPool:
    """Token counting's own threads, in two lanes: a body of up to SMALL bytes never waits behind
    a big one (six concurrent 10 MB counts kept a small count waiting 27 s in the shared pool),
    and neither lane takes the default executor other work runs on. Each lane admits a bounded
    number of counts; past it the client is told to retry (429), not queued without end."""

    SMALL = 256 * 1024

    def __init__(self, threads: int = 2, waiting: int = 32):
        from concurrent.futures import ThreadPoolExecutor

        self.lanes = {lane: (ThreadPoolExecutor(threads, thread_name_prefix=f"lynkr-count-{lane}"),
                             asyncio.Semaphore(threads + waiting)) for lane in ("small", "large")}

    async def count(self, canonical: dict, size: int) -> int:
        pool, room = self.lanes["small" if size <= self.SMALL else "large"]
        if room.locked():
            raise ProxyError(429, "too many token counts in progress; retry shortly", retry_after=1,
                             retryable=True)
        async with room:
            return await asyncio.get_running_loop().run_in_executor(pool, anthropic.estimate_tokens, canonical)

    def close(self) -> None:
        for pool, _ in self.lanes.values():
            pool.shutdown(wait=False, cancel_futures=True)


async def count_tokens(request: web.Request) -> web.Response:
    """An estimate (cl100k × 1.1) of system + messages + tools; never 0, never a 404 — Claude Code
    times auto-compaction on it."""
    try:
        raw, body = await read_raw_json(request, _max_body(request))
        validate_request("count_tokens", body, _server(request))
        canonical = anthropic.count_tokens_body(body)
        n = await request.app["count_pool"].count(canonical, len(raw))
    except ProxyError as e:
        return anthropic.error_response(e)
    return web.Response(body=orjson.dumps({"input_tokens": n}), content_type="application/json")


def model_ids(pipeline) -> list[str]:
    """Model names a client can ask for: the `models:` table's names, then every routed model
    (for a `provider:*` route, the model that provider serves by default)."""
    if pipeline is None:
        return []
    data = pipeline.config or {}
    ids: list[str] = list((data.get("models") or {}).keys())
    targets = list((data.get("tiers") or {}).values())
    for st in data.get("stages") or ():
        to = (st.get("with") or {}).get("to") if isinstance(st, dict) else None
        targets += to if isinstance(to, list) else [to]
    for t in targets:
        if isinstance(t, str) and ":" in t:
            name, _, m = t.partition(":")
            provider = (getattr(pipeline, "providers", None) or {}).get(name)
            if m == "*" and provider is not None:
                m = provider.model_for(None)
            if m and m != "*":
                ids.append(m)
    return list(dict.fromkeys(ids))


async def models(request: web.Request) -> web.Response:
    try:
        ids = model_ids(pipeline_for(request))
    except ProxyError as e:
        return (openai_chat if "authorization" in request.headers else anthropic).error_response(e)
    h = request.headers
    if "client_version" in request.query:
        # Codex wants its own manifest; an empty list makes it use its bundled catalog.
        return web.Response(body=orjson.dumps({"models": []}), content_type="application/json")
    if "anthropic-version" in h or ("x-api-key" in h and "authorization" not in h):
        return web.Response(body=orjson.dumps(anthropic.models_body(ids)), content_type="application/json")
    data = [{"id": i, "object": "model", "created": 0, "owned_by": "lynkr"} for i in ids]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


async def embeddings(request: web.Request) -> web.Response:
    try:
        body = await read_json(request, _max_body(request))
        return await embed_wire.handle(request, body)
    except ProxyError as e:
        return openai_chat.error_response(e)


async def hello(request: web.Request) -> web.Response:
    # Claude Code's pre-connect warm-up (`HEAD /api/hello`); any fast answer will do.
    return web.Response(status=200)


def setup(app: web.Application) -> None:
    async def count_pool(app):
        app["count_pool"] = pool = CountPool()
        yield
        pool.close()

    app.cleanup_ctx.append(count_pool)
    r = app.router
    # Each protocol at its own path, and under /p/NAME/ for a folder's pipeline NAME (docs/teams.md).
    for root in ("", "/p/{pipeline}"):
        r.add_post(root + "/v1/messages", messages)
        r.add_post(root + "/v1/messages/count_tokens", count_tokens)
        for prefix in ("/v1", ""):
            r.add_post(root + prefix + "/chat/completions", chat_completions)
            r.add_post(root + prefix + "/responses", responses)
        # /v1 only: lynkr.server.security guards /v1/* and the two unprefixed paths above.
        r.add_get(root + "/v1/models", models)
    r.add_post("/v1/embeddings", embeddings)
    r.add_route("HEAD", "/api/hello", hello)
