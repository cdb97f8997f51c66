"""Liveness, readiness and the service banner."""
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
    return web.json_response({"status": "ready", "pipeline": engine.current.name, "hash": engine.current.hash})


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
