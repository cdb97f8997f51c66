"""`/v1/admin/*`: the active pipeline and forced reloads. Admin token required."""
from __future__ import annotations

import datetime as dt

from aiohttp import web

from lynkr.server.auth import require_admin
from lynkr.server.provider_health import served

__all__ = ["setup"]


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat() if ts else None


def pipeline_status(engine) -> dict:
    p = engine.current
    return {
        "name": p.name if p else None,
        "file": engine.path,
        "hash": p.hash if p else None,
        "loaded_at": _iso(p.loaded_at) if p else None,
        "plan": p.plan.describe() if p else [],
        "reloads": engine.reloads,
        "reload_failures": engine.reload_failures,
        "last_error": engine.last_error,
        "last_error_at": _iso(engine.last_error_at),
        # Every pipeline served (a folder's, one per file; `name` above is the front one's).
        "pipelines": [{"name": q.name, "file": q.file, "hash": q.hash, "loaded_at": _iso(q.loaded_at)}
                      for q in served(engine)],
    }


async def get_pipeline(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response(pipeline_status(request.app["engine"]))


async def post_reload(request: web.Request) -> web.Response:
    require_admin(request)
    engine = request.app["engine"]
    ok = await engine.reload()
    return web.json_response({"reloaded": ok, **pipeline_status(engine)}, status=200 if ok else 422)


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/admin/pipeline", get_pipeline)
    app.router.add_post("/v1/admin/reload", post_reload)
