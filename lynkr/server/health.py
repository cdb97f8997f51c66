"""Liveness, readiness and the service banner.

`/health/ready` is 200 `ready` when serving; 200 `degraded` when `state.redis` is set and Redis does
not answer (the replica serves from its local state); 503 while starting or shedding load."""
from __future__ import annotations

from aiohttp import web

from lynkr import __version__

__all__ = ["setup"]


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    engine = request.app["engine"]
    if engine.current is None:
        return web.json_response({"status": "starting"}, status=503)
    shed = request.app.get("shedder")
    if shed is not None and shed.overloaded():
        return web.json_response({"status": "overloaded", "pipeline": engine.current.name}, status=503)
    body = {"status": "ready", "pipeline": engine.current.name, "hash": engine.current.hash}
    state = engine.shared.get("state")
    if state is not None:
        # Redis down is not a reason to take the replica out: it serves from its local state
        # (still 200), and says so for whoever watches.
        body["state"] = state.status()
        if not state.up:
            body["status"] = "degraded"
    return web.json_response(body)


async def banner(request: web.Request) -> web.Response:
    engine = request.app["engine"]
    return web.json_response({"service": "lynkr", "version": __version__,
                              "status": "ready" if engine.current is not None else "starting"})


def setup(app: web.Application) -> None:
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/health", ready)
    app.router.add_route("HEAD", "/", banner)
    app.router.add_get("/", banner, allow_head=False)
