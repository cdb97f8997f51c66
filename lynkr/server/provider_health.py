"""Provider health over HTTP: circuit-breaker state per provider+model, and a reset.

    GET  /v1/health/providers              (Lynkr's path) breakers and the providers they belong to,
                                           each pool of upstream keys (masked: the last 4 characters),
                                           and the MCP servers the proxy runs (docs/mcp.md)
    POST /v1/admin/circuit-breakers/reset  (admin token) close every breaker, e.g. after an outage
"""
from __future__ import annotations

from aiohttp import web

from lynkr.providers.resilience import breakers_for
from lynkr.redact import redact
from lynkr.server.auth import require_admin

__all__ = ["setup", "status", "key_pools", "served"]


def served(engine) -> list:
    """The pipelines an engine serves (one, or a folder's)."""
    serving = getattr(engine, "serving", None)
    if serving is not None:
        return serving()
    return [engine.current] if getattr(engine, "current", None) is not None else []


def key_pools(engine) -> dict[str, list[dict]]:
    """Each pool of upstream keys (lynkr.providers.pool) by provider name, members masked."""
    out = {}
    for pipeline in served(engine):
        for name, p in getattr(pipeline, "providers", {}).items():
            pool = getattr(p, "pool", None)
            if pool is not None and name not in out:
                out[name] = pool.snapshot()
    return out


def status(engine) -> dict:
    providers = {}
    for pipeline in served(engine):
        for name, p in getattr(pipeline, "providers", {}).items():
            providers.setdefault(name, {"kind": p.kind, "base_url": redact(p.base_url)})
    for name, members in key_pools(engine).items():
        providers[name]["keys"] = members
    mcp = engine.shared.get("mcp_servers")
    return {"providers": providers, "breakers": breakers_for(engine.shared).snapshot(),
            "mcp": mcp.snapshot() if mcp is not None else {}}


async def get_providers(request: web.Request) -> web.Response:
    return web.json_response(status(request.app["engine"]))


async def post_reset(request: web.Request) -> web.Response:
    require_admin(request)
    engine = request.app["engine"]
    breakers = breakers_for(engine.shared)
    for b in breakers.all():
        b.success()         # with state.redis, every replica's breaker closes too
    return web.json_response({"reset": True, **status(engine)})


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/health/providers", get_providers)
    app.router.add_post("/v1/admin/circuit-breakers/reset", post_reset)
