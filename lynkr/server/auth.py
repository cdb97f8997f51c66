"""Admin-token checks, compared in constant time."""
from __future__ import annotations

import hmac
import os

from aiohttp import web

__all__ = ["admin_token", "require_admin", "bearer_or_key"]


def admin_token(app: web.Application) -> str | None:
    engine = app["engine"]
    cfg = (engine.current.config.get("server") or {}) if engine.current is not None else {}
    return os.environ.get("LYNKR_ADMIN_TOKEN") or cfg.get("admin_token") or None


def bearer_or_key(request: web.Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    # `?token=` only where a browser link needs it (GET: the dashboard, report pages): a token in a
    # URL lands in proxy and browser histories, and a cross-site form could carry it in a POST.
    query = request.query.get("token") if request.method in ("GET", "HEAD") else None
    return request.headers.get("x-api-key") or request.headers.get("x-lynkr-admin-token") or query


def require_admin(request: web.Request) -> None:
    """Raise 401/403 unless the request carries the admin token. No token configured = refused."""
    expected = admin_token(request.app)
    if not expected:
        raise web.HTTPForbidden(text='{"error":"admin endpoints are disabled: set LYNKR_ADMIN_TOKEN or server.admin_token"}',
                                content_type="application/json")
    given = bearer_or_key(request) or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPUnauthorized(text='{"error":"admin token required"}', content_type="application/json")
