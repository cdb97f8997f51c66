"""The aiohttp application: each module under lynkr.server adds its own routes in `setup(app)`."""
from __future__ import annotations

import importlib

from aiohttp import web

from lynkr.engine.runtime import Engine

__all__ = ["create_app", "ROUTE_MODULES"]

# Modules with a `setup(app)`; order is route registration order.
ROUTE_MODULES: tuple[str, ...] = (
    "lynkr.server.connections",   # per-peer and total connection caps, header/body/idle deadlines
    "lynkr.server.security",      # middlewares: client keys, limits, load shedding (before any route)
    "lynkr.server.health",
    "lynkr.server.admin",
    "lynkr.server.provider_health",     # /v1/health/providers (breakers), /v1/admin/circuit-breakers/reset
    "lynkr.server.metrics",
    "lynkr.server.dashboard",
    "lynkr.server.client_routes",
)


def create_app(engine: Engine, *, manage_engine: bool = True) -> web.Application:
    # Body limits are ours (server.max_body_bytes), and so is inflating gzip bodies: aiohttp's own
    # decoder answers a bad or unsupported content-encoding in plain text, outside any client protocol.
    app = web.Application(client_max_size=1024 ** 3, handler_args={"auto_decompress": False})
    app["engine"] = engine
    for name in ROUTE_MODULES:
        importlib.import_module(name).setup(app)
    if manage_engine:
        async def lifecycle(app):
            if engine.current is None:
                await engine.start()
            yield
            await engine.stop()
        app.cleanup_ctx.append(lifecycle)
    return app
