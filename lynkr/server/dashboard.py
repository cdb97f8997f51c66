"""`GET /dashboard`: one page of savings charts, fed by JSON from the same SQL as `lynkr report`.

Off unless the pipeline says `dashboard: {enabled: true}` (404 otherwise), and every data
endpoint and the page itself need the admin token (`Authorization: Bearer …`, or `?token=` to
open the page in a browser; the page then keeps it in sessionStorage and drops it from the URL).
The page's script and style are static files with no data in them.

Queries run in a thread on a read-only attach of the telemetry file (lynkr/telemetry/reports.py),
never on the event loop. No prompt or response text is ever sent: the reports do not select it.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from aiohttp import web

from lynkr.teams import ledger
from lynkr.telemetry.reports import ReportError, NoRequests, list_reports, parse_since, run_reports
from lynkr.server.auth import require_admin

__all__ = ["setup", "DASHBOARD_REPORTS"]

STATIC = Path(__file__).parent / "static"
# The reports the page draws, in the order of its panels.
DASHBOARD_REPORTS = ("savings", "by-day", "by-model", "tiers", "cache", "latency", "errors", "pipelines",
                     "by-key", "by-team")
_ASSETS = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",       # the page URL may carry ?token=
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
}


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store"})


def _enabled_or_404(request: web.Request) -> None:
    p = request.app["engine"].current
    if p is None or not (p.config.get("dashboard") or {}).get("enabled", False):
        raise web.HTTPNotFound(text='{"error":"the dashboard is off: set dashboard: {enabled: true} in the pipeline"}',
                               content_type="application/json")


def telemetry_path(engine) -> str | dict | None:
    """The telemetry file, or the lake's settings (lynkr.telemetry.reports.connect takes both)."""
    lake = getattr(engine.writer, "lake", None)
    if lake:
        return lake
    path = getattr(engine.writer, "path", None)
    if path:
        return path
    p = engine.current
    tcfg = (p.config.get("telemetry") or {}) if p is not None else {}
    if not tcfg.get("enabled", True):
        return None
    return getattr(engine, "_telemetry_path", None) or tcfg.get("path") or ".lynkr/telemetry.duckdb"


async def page(request: web.Request) -> web.StreamResponse:
    _enabled_or_404(request)
    require_admin(request)
    return web.Response(body=(STATIC / "dashboard.html").read_bytes(), content_type="text/html", charset="utf-8",
                        headers=_HEADERS)


async def asset(request: web.Request) -> web.StreamResponse:
    _enabled_or_404(request)
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound()
    return web.Response(body=(STATIC / name).read_bytes(), content_type=_ASSETS[name], headers=_HEADERS)


async def data(request: web.Request) -> web.Response:
    """All the page's reports at once: {requests, reports: {name: {columns, rows}}, ...}."""
    _enabled_or_404(request)
    require_admin(request)
    names = list(DASHBOARD_REPORTS)
    if "report" in request.match_info:
        name = request.match_info["report"]
        if name not in list_reports():
            return _json_error(404, f"no report named '{name}' (available: {', '.join(list_reports())})")
        names = [name]
    return await _run(request, names)


async def _run(request: web.Request, names: list[str]) -> web.Response:
    engine = request.app["engine"]
    since = request.query.get("since") or None
    pipeline = request.query.get("pipeline") or None
    try:
        parse_since(since)
    except ReportError as e:
        return _json_error(400, str(e))
    p = engine.current
    body = {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "pipeline": {"name": p.name, "hash": p.hash} if p is not None else None,
            "since": since, "filter_pipeline": pipeline, "requests": 0, "reports": {}}
    path = telemetry_path(engine)
    if path is None:
        body["message"] = "telemetry is disabled in this pipeline"
        return web.json_response(body, headers={"Cache-Control": "no-store"})
    config = p.config if p is not None else None
    loop = asyncio.get_running_loop()
    try:
        out = await loop.run_in_executor(
            None, lambda: run_reports(path, names, since=since, pipeline=pipeline, config=config))
    except NoRequests:
        body["message"] = "no requests yet"
        return web.json_response(body, headers={"Cache-Control": "no-store"})
    except ReportError as e:
        return _json_error(500, str(e))
    body["requests"] = out.pop("requests")
    body["reports"] = out
    if "by-key" in out:
        body["keys"] = await _key_state(request)
    if not body["requests"]:
        body["message"] = "no requests yet"
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _key_state(request: web.Request) -> dict:
    """What the per-key table adds to the by-key and by-team reports: refusals at the door per key
    (401/429/402 never reach telemetry; this process's counts, as its /metrics has them) and the
    live counters of each limited key and team (`key:NAME` / `team:NAME`: rpm and tpm windows, in
    flight, USD today and this month; the host's, from lynkr.teams.ledger)."""
    refusals: dict = {}
    for (key, outcome), n in (request.app.get("key_refusals") or {}).items():
        refusals.setdefault(key, {})[outcome] = n
    live = await ledger.snapshot_async()
    return {"refusals": refusals, "live": live}


# -- the memory panel: what the memory stage remembers (user data: only here, behind the token) ----
# The stage that keeps memories says so with `memory_file`, and lists and deletes them itself.

def _memory_stage(request: web.Request):
    p = request.app["engine"].current
    return next((s for s in (p.stages.values() if p is not None else ()) if getattr(s, "memory_file", None)), None)


async def memories(request: web.Request) -> web.Response:
    """{enabled, projects: [{project, tenant, memories}], memories: [...]} — of `?project=` or all
    (newest 500); `enabled: false` when the pipeline has no memory stage (the panel stays hidden)."""
    _enabled_or_404(request)
    require_admin(request)
    stage = _memory_stage(request)
    if stage is None:
        return web.json_response({"enabled": False, "projects": [], "memories": []}, headers={"Cache-Control": "no-store"})
    project = request.query.get("project") or None
    rows = await asyncio.get_running_loop().run_in_executor(None, stage.memories, project)
    counts: dict = {}
    for r in rows:
        counts[(r["project"], r["tenant"])] = counts.get((r["project"], r["tenant"]), 0) + 1
    rows.sort(key=lambda r: r["created"], reverse=True)
    return web.json_response({"enabled": True, "projects": [{"project": p, "tenant": t, "memories": n} for (p, t), n in sorted(counts.items())],
                              "memories": rows[:500]}, headers={"Cache-Control": "no-store"})


async def forget_memory(request: web.Request) -> web.Response:
    _enabled_or_404(request)
    require_admin(request)
    stage = _memory_stage(request)
    if stage is None:
        return _json_error(404, "no memory stage in this pipeline")
    mid = request.match_info["id"][:64]
    if not await asyncio.get_running_loop().run_in_executor(None, stage.forget, mid):
        return _json_error(404, f"no memory {mid!r}")
    return web.json_response({"forgot": mid}, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.router.add_get("/dashboard", page)
    app.router.add_get("/dashboard/", page)
    app.router.add_get("/dashboard/static/{name}", asset)
    app.router.add_get("/dashboard/api/data", data)
    app.router.add_get("/dashboard/api/report/{report}", data)
    app.router.add_get("/dashboard/api/memory", memories)
    app.router.add_delete("/dashboard/api/memory/{id}", forget_memory)
