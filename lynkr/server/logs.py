"""What `lynkr run` prints while it serves: every log line in one format (`--log-format text|json`),
and one line per request (`--quiet` turns those off):

    04:31:02 info  claude-code anthropic  claude-sonnet-4-5 → demo:demo-medium  200  41 ms  18204 → 9873 tok  cache miss  tier MEDIUM  req_…

The request line is written when the request's telemetry row is built (the telemetry thread,
~50 ms after the response): that row has the exact token counts, and the event loop pays nothing
for them. With telemetry off the line is written at the end of the request, without counts.
It never holds prompt or response text: the row has none unless `telemetry.content` is on, and
even then the line does not print it. Strings a client chose (its user agent, model name, an
upstream's error wording) are cut short and stripped of control characters.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re

from lynkr.kit.logfmt import configure

__all__ = ["configure_logging", "request_fields", "request_line", "client_name", "RequestLog", "REQUEST_LOGGER"]

REQUEST_LOGGER = "lynkr.request"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CLIENTS = (("claude-cli", "claude-code"), ("claude-code", "claude-code"), ("codex", "codex"), ("cursor", "cursor"),
            ("cline", "cline"), ("continue", "continue"), ("anthropic/", "anthropic-sdk"),
            ("openai/", "openai-sdk"), ("curl/", "curl"))


def clean(value, limit: int = 120) -> str:
    """A client-chosen string fit for one log line."""
    text = _CONTROL.sub("?", str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def client_name(user_agent: str | None) -> str:
    """Which tool sent a request, from its user agent: `claude-cli/2.1.3 (external, cli)` is claude-code."""
    if not user_agent:
        return "-"
    low = user_agent.lower()
    for needle, name in _CLIENTS:
        if needle in low:
            return name
    return clean(re.split(r"[/\s]", user_agent.strip(), maxsplit=1)[0] or "-", 24)


def request_fields(row: dict) -> dict:
    """The request line's fields from a telemetry `requests` row (or the same keys, fewer of them)."""
    provider, model = row.get("provider"), row.get("model")
    ts = row.get("ts")
    if isinstance(ts, dt.datetime):
        ts = ts.replace(tzinfo=dt.timezone.utc).timestamp()
    error = row.get("error")
    return {
        "time": ts, "id": row.get("id"), "client": client_name(row.get("user_agent")),
        "protocol": row.get("client"),
        "model": clean(row["requested_model"]) if row.get("requested_model") is not None else None,
        "route": f"{provider}:{clean(model)}" if provider else None,
        "status": row.get("status"), "ms": round(row["latency_ms"]) if row.get("latency_ms") is not None else None,
        "tokens_in": row.get("tokens_client"), "tokens_upstream": row.get("tokens_upstream"),
        "cache": row.get("cache") or "miss", "tier": row.get("tier"),
        **({"error": clean(error, 200)} if error else {}),
    }


def request_line(f: dict) -> str:
    tokens = (f"{f['tokens_in']} → {f['tokens_upstream']} tok" if f.get("tokens_in") is not None else "tokens n/a")
    route = f["route"] or ("(cache)" if f.get("cache") not in (None, "miss") else "(none)")
    line = (f"{f['client']} {f['protocol']}  {f['model'] or '(no model)'} → {route}  {f['status']}  "
            f"{f['ms']} ms  {tokens}  cache {f['cache']}")
    if f.get("tier"):
        line += f"  tier {f['tier']}"
    if f.get("error"):
        line += f"  ({f['error']})"
    return f"{line}  {f['id']}"


def configure_logging(level: str = "info", fmt: str = "text", quiet: bool = False) -> None:
    """Every logger in one format (lynkr.kit.logfmt; the processes `lynkr run` starts inherit it
    through LYNKR_LOG_FORMAT); `quiet` drops the request lines (warnings stay)."""
    os.environ["LYNKR_LOG_FORMAT"] = fmt
    configure(level, fmt)
    logging.getLogger(REQUEST_LOGGER).setLevel(logging.WARNING if quiet else logging.NOTSET)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _log(log: logging.Logger, fields: dict) -> None:
    log.info("request", extra={"fields": {"event": "request", **{k: v for k, v in fields.items() if k != "time"}},
                               "text": request_line(fields)})


class RequestLog:
    """Writes the request lines of one engine: from its telemetry rows, or at the end of each
    request when telemetry is off."""

    def __init__(self):
        self.log = logging.getLogger(REQUEST_LOGGER)

    def attach(self, engine) -> None:
        if not self.log.isEnabledFor(logging.INFO):
            return
        hooks = getattr(engine.writer, "on_rows", None)
        if hooks is not None:
            hooks.append(self.on_row)
        else:
            engine.on_finish.append(self.on_finish)

    def on_row(self, row: dict, _events) -> None:
        _log(self.log, request_fields(row))

    def on_finish(self, x) -> None:
        resp = x.response
        row = {"id": x.id, "ts": None, "client": x.client, "user_agent": x.headers.get("user-agent"),
               "requested_model": x.original.get("model") if isinstance(x.original, dict) else None,
               "provider": x.route.provider if x.route else None,
               "model": x.vars.get("upstream_model") or (x.route.model if x.route else None),
               "status": resp.status if resp is not None else None, "latency_ms": x.vars.get("latency_ms"),
               "cache": x.vars.get("cache"), "tier": x.vars.get("tier"),
               "error": (f"{resp.error.status} {resp.error.message}" if resp is not None and resp.error else None)}
        _log(self.log, request_fields(row))
