"""One client request, whatever its protocol: read → parse → pipeline → render → finish.

A protocol module (lynkr.wire.*) provides CLIENT, to_canonical(body), render(request, x) and
error_response(err). Anything that goes wrong becomes an error in that protocol's own shape;
no traceback ever reaches a client.
"""
from __future__ import annotations

import logging
import time
import zlib

import orjson
from aiohttp import web

from lynkr.errors import ProxyError, did_you_mean
from lynkr.exchange import Exchange
from lynkr.kit.cache import remembered
from lynkr.redact import printable
from lynkr.server.connections import body_deadline
from lynkr.wire.render import ClientGone
from lynkr.wire.validate import validate_request

__all__ = ["serve", "read_json", "read_raw_json", "pipeline_for"]

log = logging.getLogger("lynkr.server")

DEFAULT_MAX_BODY = 32 * 1024 * 1024


async def read_json(request: web.Request, max_bytes: int) -> object:
    return (await read_raw_json(request, max_bytes))[1]


async def read_raw_json(request: web.Request, max_bytes: int) -> tuple[bytes, object]:
    """(the body's bytes, inflated when compressed; what they parse into)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise ProxyError(413, f"request body is {request.content_length} bytes; the limit is {max_bytes}")
    if request.content.is_eof():
        # The whole body came with the headers (most requests): nothing to wait for, so no deadline.
        raw = await _read_body(request, max_bytes)
    else:
        async with body_deadline(request):
            raw = await _read_body(request, max_bytes)
    # The app turns aiohttp's request inflation off (create_app), so a compressed body arrives as
    # sent: the capped read above bounds the wire size, _inflate the inflated size (zip bombs).
    enc = (request.headers.get("content-encoding") or "").lower().strip()
    if enc in ("gzip", "x-gzip"):
        raw = _inflate(raw, max_bytes, wbits=31, name="gzip")
    elif enc == "deflate":
        raw = _inflate(raw, max_bytes, wbits=15, name="deflate")
    elif enc not in ("", "identity"):
        raise ProxyError(415, f"content-encoding '{enc[:40]}' is not supported: send gzip, deflate or an uncompressed body")
    if len(raw) > max_bytes:
        raise ProxyError(413, f"decompressed body is larger than the limit of {max_bytes} bytes")
    if not raw:
        raise ProxyError(400, "request body is empty; expected a JSON object")
    try:
        return raw, orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ProxyError(400, f"request body is not valid JSON: {e}") from None


async def _read_body(request: web.Request, max_bytes: int) -> bytes:
    if not request.can_read_body:
        return b""
    if request.content_length is not None:
        # Its length is known and within the limit (read_json checked): one read, no chunk list.
        try:
            return await request.read()
        except Exception as e:
            raise ProxyError(400, f"request body could not be read: {type(e).__name__}") from None
    # Chunked: read to the end, refusing once past the limit.
    chunks, size = [], 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > max_bytes:
                raise ProxyError(413, f"request body is larger than the limit of {max_bytes} bytes")
            chunks.append(chunk)
    except ProxyError:
        raise
    except Exception as e:   # a body cut short, bad chunked framing, a corrupt compressed stream
        raise ProxyError(400, f"request body could not be read: {type(e).__name__}") from None
    return b"".join(chunks)


def _inflate(raw: bytes, max_bytes: int, *, wbits: int, name: str) -> bytes:
    try:
        out = zlib.decompressobj(wbits=wbits).decompress(raw, max_bytes + 1)
    except zlib.error:
        try:   # "deflate" is zlib-wrapped by the RFC, raw deflate by some clients
            out = zlib.decompressobj(wbits=-15).decompress(raw, max_bytes + 1) if name == "deflate" else None
        except zlib.error:
            out = None
        if out is None:
            raise ProxyError(400, f"content-encoding is {name} but the body is not valid {name}") from None
    if len(out) > max_bytes:
        raise ProxyError(413, f"decompressed body is larger than the limit of {max_bytes} bytes")
    return out


def session_of(h, body) -> str | None:
    """The client's session: a header (case-insensitive mapping, or lower-cased keys), else
    `metadata.user_id`. Tier stability and caches key on it."""
    # Codex sends `session-id` (its fixture in ../shared shows it).
    sid = h.get("x-claude-code-session-id") or h.get("session_id") or h.get("session-id") or h.get("x-session-id")
    if sid:
        return printable(sid, 128)        # it reaches telemetry and logs
    meta = body.get("metadata") if isinstance(body, dict) else None
    if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
        return _session_in_user_id(meta["user_id"])
    return None


@remembered(max_entries=1024)      # a session sends the same user_id with every request
def _session_in_user_id(uid: str) -> str:
    """Claude Code 2.1 sends `user_id` as JSON (`{"device_id":…,"account_uuid":…,"session_id":…}`),
    1.x as `user_<hash>_account_<uuid>_session_<uuid>`: the session is its last part. Any other
    value is the client's own id, kept (its last 64 characters)."""
    if uid.startswith("{"):
        try:
            sid = orjson.loads(uid).get("session_id")
        except (orjson.JSONDecodeError, AttributeError):
            sid = None
        if isinstance(sid, str) and sid:
            return printable(sid[-64:])
    _, sep, sid = uid.rpartition("_session_")
    return printable((sid if sep and sid else uid)[-64:])


_CREDENTIAL_HEADERS = {"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"}


def pipeline_for(request: web.Request):
    """The pipeline a request goes to: the one `/p/NAME/…` names, else its client key's own
    (`keys.NAME.pipeline`, or its team's), else the front one (a folder's, or the only one).
    A 404 for a name not served, a 403 for one the key may not use."""
    engine = request.app["engine"]
    named = request.match_info.get("pipeline")
    key = request.get("client_key")
    allowed = key.pipelines if key is not None else ()
    if named is None:
        if not allowed:
            return engine.current
        named = allowed[0]
    pipeline = engine.named(named)
    if pipeline is None:
        served = [p.name for p in engine.serving()]
        raise ProxyError(404, f"no pipeline named '{printable(named, 80)}' is served here (served: {', '.join(served)})"
                         + (f"; {hint}" if (hint := did_you_mean(named, served)) else ""), type="not_found_error")
    if allowed and named not in allowed:
        raise ProxyError(403, f"key {key.name} may use the pipeline{'s' if len(allowed) > 1 else ''} "
                              f"{', '.join(allowed)}, not '{named}'", type="permission_error")
    return pipeline


async def serve(request: web.Request, proto) -> web.StreamResponse:
    engine = request.app["engine"]
    t0 = time.perf_counter()
    front = engine.current          # the server settings are the process's: the front pipeline's
    server_cfg = (front.config.get("server") or {}) if front is not None else {}
    try:
        pipeline = pipeline_for(request) if front is not None else None
        raw, body = await read_raw_json(request, server_cfg.get("max_body_bytes", DEFAULT_MAX_BODY))
        # The client's fault ends here, as a 400 (the model name's checks included).
        validate_request(proto.CLIENT, body, server_cfg)
        canonical = proto.to_canonical(body)
    except ProxyError as e:
        return proto.error_response(e)
    if pipeline is None:
        return proto.error_response(ProxyError(503, "no pipeline is loaded yet", retry_after=1))

    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
    x = engine.exchange(proto.CLIENT, canonical, original=body, raw=raw if getattr(proto, "PARTS_SHARED", False) else None,
                        headers=headers, session=session_of(request.headers, body))
    x.vars["path"] = request.path
    request["exchange"] = x       # security.guard charges its usage to the client's key when it ends
    client_key = request.get("client_key")
    if client_key is not None:
        x.vars["key"], x.vars["team"] = client_key.name, client_key.team
        if client_key.models:
            x.vars["allowed_models"] = client_key.models
    else:
        # Without Lynkr client keys, the client's key is meant for the upstream (a Claude Code user
        # keeps their own login); with them, it is a Lynkr key and must never leave.
        auth = {k: request.headers[k] for k in ("x-api-key", "authorization") if k in request.headers}
        x.client_auth = auth or None
    try:
        await pipeline.handle(x)
    except Exception as e:  # the executor contains stage errors; this is a bug guard
        log.exception("pipeline crashed on %s", x.id)
        return proto.error_response(ProxyError(500, f"internal error ({type(e).__name__}); request id {x.id}"))
    t_pipeline = time.perf_counter()
    try:
        out = await proto.render(request, x)
    except (ConnectionResetError, ConnectionError) as e:
        x.vars["client_disconnected"] = True
        if x.response is not None and x.response.error is None:
            x.response.error = ProxyError(499, f"client disconnected: {e}")
        if not isinstance(e, ClientGone):
            raise
        log.debug("%s: the client closed the connection mid-stream", x.id)
        out = e.response
    except Exception as e:
        log.exception("rendering %s failed", x.id)
        if x.response is not None and x.response.error is None:
            x.response.error = ProxyError(500, f"render failed: {type(e).__name__}")
        out = proto.error_response(ProxyError(500, f"internal error while answering ({type(e).__name__}); request id {x.id}"))
    finally:
        _timings(x, t0, t_pipeline)
        engine.finish_later(x)
    return out


def _timings(x: Exchange, t0: float, t_pipeline: float) -> None:
    now = time.perf_counter()
    v = x.vars
    v["latency_ms"] = (now - t0) * 1000
    resp = x.response
    if resp is not None and resp.first_byte_at is not None:
        v["ttfb_ms"] = (resp.first_byte_at - t0) * 1000
        done = resp.upstream_done_at or now
        started = v.get("upstream_started_at")
        if started:
            v["upstream_ms"] = (done - started) * 1000
            v["overhead_ms"] = max(0.0, v["latency_ms"] - v["upstream_ms"])
    else:
        v["overhead_ms"] = v["latency_ms"] if resp is not None and resp.source.startswith("cache") else None
