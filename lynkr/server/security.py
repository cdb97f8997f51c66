"""What stands in front of the client routes: client keys, per-key concurrency limits, load shedding.

Keys with names, teams, limits and model allow-lists (`keys:`, `teams:`) are lynkr.server.keys
(docs/teams.md); `server.api_keys` are keys without limits.

    server:
      api_keys: ["{{ env.LYNKR_CLIENT_KEY }}"]   # x-api-key or Authorization: Bearer; unset = no client auth
      max_concurrent_per_key: 8                   # 429 + retry-after beyond it
      shed: {max_in_flight: 1024, max_loop_lag_ms: 500, retry_after_s: 2}

Every refusal is an error in the client's own protocol (an Anthropic client gets
`{"type":"error",…}`, an OpenAI client `{"error":{…}}`), with `retry-after` when waiting helps.

Load shedding measures pressure instead of guessing it from heap size: requests in flight in this
process, and event-loop lag (how late a 50 ms timer fires, smoothed). Past either bound a new request is
refused at once with 529 (Anthropic clients: overloaded_error, which the SDKs retry) or 503
(OpenAI clients), before it costs anything, and `/health/ready` answers 503 so a balancer moves
traffic away. Requests already admitted are never cut.

Settings are read from the pipeline serving the request, so a reload changes them.
"""
from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import math
import os

import orjson
from aiohttp import web

from lynkr.errors import ProxyError
from lynkr.kit.cache import Bounded
from lynkr.redact import install_log_redaction
from lynkr.server.connections import DEFAULT_PER_PEER
from lynkr.server import keys
from lynkr.server.keys import KeyBook

__all__ = ["setup", "Shedder", "protocol_for_path", "is_client_path", "DEFAULT_MAX_IN_FLIGHT",
           "DEFAULT_MAX_LOOP_LAG_MS"]

log = logging.getLogger("lynkr.server")

# Defaults sized so a benchmark on a laptop never trips them: they are there to keep a flooded
# process answering (fast refusals) instead of queueing until every request times out.
DEFAULT_MAX_IN_FLIGHT = 2048
DEFAULT_MAX_LOOP_LAG_MS = 500.0
DEFAULT_RETRY_AFTER_S = 2.0
LAG_SAMPLE_S = 0.05
# Lag is smoothed (exponentially weighted, 0.3 per 50 ms sample): sustained lag sheds within a few
# samples, while a one-off stall (a lazy import, a collection) moves it by a third and fades, so it
# neither sheds on a hiccup nor flaps sample to sample.
LAG_WEIGHT = 0.3

# Paths with their own protection (admin token) or none by design (probes, Claude Code's warm-up).
# Everything else is client API: a path added later is behind client keys unless listed here.
_NOT_CLIENT = ("/health", "/v1/admin", "/dashboard", "/metrics")
_OPEN_EXACT = {"/", "/api/hello"}
_OPENAI_SUFFIXES = ("/chat/completions", "/responses", "/embeddings", "/models")


_CLIENT_PATHS = {"/v1/messages", "/v1/chat/completions", "/v1/responses", "/chat/completions", "/responses"}


def is_client_path(path: str) -> bool:
    if path in _CLIENT_PATHS:       # the hot ones, without the prefix scan
        return True
    if path in _OPEN_EXACT:
        return False
    return not any(path == p or path.startswith(p + "/") for p in _NOT_CLIENT)


def _is_openai(path: str) -> bool:
    return path.rstrip("/").endswith(_OPENAI_SUFFIXES)


class _OpenAIErrors:
    """If lynkr.wire.openai_* cannot be imported: the OpenAI error envelope, same status and retry headers."""

    @staticmethod
    def error_response(err: ProxyError) -> web.Response:
        h = {"x-should-retry": "true" if err.retryable else "false"}
        if err.retry_after is not None:
            h["retry-after"] = str(max(0, math.ceil(err.retry_after)))
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded", 413: "request_too_large"}.get(err.status)
        etype = {401: "authentication_error", 429: "rate_limit_error", 503: "server_error",
                 529: "server_error"}.get(err.status, "invalid_request_error" if err.status < 500 else "server_error")
        return web.Response(status=err.status, content_type="application/json", headers=h, body=orjson.dumps(
            {"error": {"message": err.message, "type": etype, "param": None, "code": code}}))


def protocol_for_path(path: str):
    """The wire module whose error envelope a client on this path understands."""
    if _is_openai(path):
        name = "openai_responses" if path.rstrip("/").endswith("/responses") else "openai_chat"
        try:
            mod = importlib.import_module(f"lynkr.wire.{name}")
            if hasattr(mod, "error_response"):
                return mod
        except ImportError:
            pass
        return _OpenAIErrors
    from lynkr.wire import anthropic
    return anthropic


def _refuse(request: web.Request, err: ProxyError) -> web.StreamResponse:
    return protocol_for_path(request.path).error_response(err)


# -- settings -------------------------------------------------------------------------------------

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ANY = {"*"}


def _names(server: dict, key: str, env: str, default: list[str]) -> frozenset:
    """A configured list, else the default, plus the environment variable's comma-separated extras
    (an operator adds an origin without editing the pipeline, like Ollama's OLLAMA_ORIGINS)."""
    conf = server.get(key)
    names = list(conf) if isinstance(conf, list) else list(default)
    names += [n.strip() for n in os.environ.get(env, "").split(",") if n.strip()]
    return frozenset(n.lower().rstrip("/") for n in names)


class _Settings:
    """The server block of one pipeline, digested once per load (keys hashed for constant-time checks)."""

    def __init__(self, config: dict):
        server = config.get("server") or {}
        bind = str(server.get("host") or "127.0.0.1").strip("[]")
        loopback = bind in _LOOPBACK or bind.startswith("127.")
        # Bound to loopback, only loopback names may be in Host: a web page that rebinds its own
        # DNS name to 127.0.0.1 is refused. Bound wider, the operator chose who can connect.
        self.hosts = _names(server, "allowed_hosts", "LYNKR_ALLOWED_HOSTS",
                            [*_LOOPBACK, bind] if loopback else ["*"])
        # Browsers send Origin with every cross-site POST (a text/plain one needs no preflight):
        # only the proxy's own origins and none (a CLI) are served.
        self.origins = _names(server, "allowed_origins", "LYNKR_ORIGINS",
                              ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"])
        self.host_ok: Bounded = Bounded(max_entries=256)    # Host header value -> allowed
        self.keys = KeyBook(config)
        self.max_per_key = server.get("max_concurrent_per_key")
        self.max_per_peer = server.get("max_in_flight_per_peer") or DEFAULT_PER_PEER
        shed = server.get("shed") or {}
        self.max_in_flight = shed.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)
        self.max_lag_ms = shed.get("max_loop_lag_ms", DEFAULT_MAX_LOOP_LAG_MS)
        self.retry_after = float(shed.get("retry_after_s", DEFAULT_RETRY_AFTER_S))
        self.enabled = shed.get("enabled", True)


def _settings(app: web.Application) -> _Settings:
    pipeline = app["engine"].current
    cache = app["security_cache"]          # a dict made at setup: the app itself is frozen once started
    if cache.get("pipeline") is pipeline and "settings" in cache:
        return cache["settings"]
    s = _Settings(pipeline.config if pipeline is not None else {})
    cache["pipeline"], cache["settings"] = pipeline, s
    return s


# -- load shedding --------------------------------------------------------------------------------

class Shedder:
    """Measured pressure: in-flight client requests and event-loop lag (smoothed, ms)."""

    def __init__(self, app: web.Application | None = None):
        self.app = app
        self.in_flight = 0
        self.reading = 0              # of those, still receiving their body (not load yet)
        self.lag_ms = 0.0
        self.shed = 0                 # requests refused since start
        self._task: asyncio.Task | None = None

    def _limits(self) -> tuple[int | None, float | None, bool]:
        if self.app is None or self.app["engine"].current is None:
            return DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_LOOP_LAG_MS, True
        s = _settings(self.app)
        return s.max_in_flight, s.max_lag_ms, s.enabled

    def reason(self) -> str | None:
        """Why a new request would be refused now, or None."""
        max_in_flight, max_lag, enabled = self._limits()
        if not enabled:
            return None
        # A request still receiving its body is not load yet: a slow client must not fill the
        # slots (its connection is bounded by lynkr.server.connections instead).
        if max_in_flight and self.in_flight - self.reading >= max_in_flight:
            return f"{self.in_flight - self.reading} requests in flight (limit {max_in_flight})"
        if max_lag and self.lag_ms >= max_lag:
            return f"event loop lag {self.lag_ms:.0f} ms (limit {max_lag:.0f} ms)"
        return None

    def overloaded(self) -> bool:
        return self.reason() is not None

    def status(self) -> dict:
        return {"in_flight": self.in_flight, "loop_lag_ms": round(self.lag_ms, 1), "shed": self.shed,
                "overloaded": self.overloaded()}

    async def _monitor(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(LAG_SAMPLE_S)
            lag = max(0.0, (loop.time() - t - LAG_SAMPLE_S) * 1000)
            self.lag_ms += LAG_WEIGHT * (lag - self.lag_ms)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._monitor(), name="lynkr-lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


# -- the middleware -------------------------------------------------------------------------------

def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:host.find("]")].lower()
    return host.rpartition(":")[0].lower() if host.count(":") == 1 else host.lower()


def _origin_ok(origin: str, allowed: frozenset) -> bool:
    origin = origin.lower().rstrip("/")
    if origin in allowed or allowed & _ANY:
        return True
    scheme_host, sep, port = origin.rpartition(":")
    return bool(sep) and port.isdigit() and f"{scheme_host}:*" in allowed


def _foreign(request: web.Request, s: "_Settings") -> str | None:
    """Why this request comes from somewhere it must not (a web page, a rebound DNS name), or None."""
    host = request.headers.get("host")
    if host is None:
        ok = True
    elif (ok := s.host_ok.get(host)) is None:
        # A client sends the same Host with every request: parsed once per value.
        ok = s.host_ok.put(host, bool(s.hosts & _ANY) or _host_name(host) in s.hosts)
    if not ok:
        return f"Host {host[:80]!r} is not one this Lynkr serves (server.allowed_hosts, LYNKR_ALLOWED_HOSTS)"
    origin = request.headers.get("origin")
    if origin is not None and not _origin_ok(origin, s.origins):
        return (f"requests from the web origin {origin[:80]!r} are refused "
                "(server.allowed_origins, LYNKR_ORIGINS)")
    return None


@web.middleware
async def guard(request: web.Request, handler):
    app = request.app
    s = _settings(app)
    conns = app["connections"]
    conn = conns.enter(request)
    try:
        return await _guarded(request, handler, app, s, conn.peer if conn is not None else None)
    finally:
        conns.leave(conn)


async def _guarded(request: web.Request, handler, app, s: "_Settings", peer: str | None):
    foreign = _foreign(request, s)
    if foreign is not None:
        err = ProxyError(403, foreign, type="permission_error", retryable=False)
        if is_client_path(request.path):
            return _refuse(request, err)
        return web.json_response({"error": err.message}, status=403)
    if not is_client_path(request.path):
        return await handler(request)
    # Both always set: aiohttp's request.get() of an absent name raises and catches a KeyError.
    client_key = request["client_key"] = None
    request["lynkr_close"] = False
    if s.keys.enabled:
        try:
            client_key = keys.identify(s.keys, request.headers)
        except ProxyError as e:
            _count(app, "(none)", "unauthorized")
            return _refuse(request, e)
        request["client_key"] = client_key

    shedder: Shedder = app["shedder"]
    why = shedder.reason()
    if why is not None:
        shedder.shed += 1
        # Anthropic's SDKs retry 529 overloaded_error; OpenAI's retry 503.
        overloaded = 503 if _is_openai(request.path) else 529
        return _refuse(request, ProxyError(overloaded, f"Lynkr is overloaded ({why}); retry shortly",
                                           type="overloaded_error", retry_after=s.retry_after, retryable=True))

    # Per-key accounting uses the key when there is one, else the peer address; only a digest is kept.
    ident = None
    if s.max_per_key:
        ident = client_key.name if client_key else hashlib.sha256(
            (keys.presented(request.headers)[0] or f"peer:{request.remote}").encode()).hexdigest()[:16]
    per_key: dict = app["per_key_in_flight"]
    if ident is not None and per_key.get(ident, 0) >= s.max_per_key:
        return _refuse(request, ProxyError(
            429, f"too many concurrent requests for this client key (limit {s.max_per_key}); retry when one finishes",
            retry_after=1, retryable=True))

    peer = peer or request.remote or "local"      # the connection's, read once at accept
    per_peer: dict = app["per_peer_in_flight"]
    if per_peer.get(peer, 0) >= s.max_per_peer:
        return _refuse(request, ProxyError(
            429, f"too many concurrent requests from this address (limit {s.max_per_peer}); retry when one finishes",
            retry_after=1, retryable=True))
    held = None
    state = app["engine"].shared.get("state")
    if client_key is not None:
        try:
            # In Redis with state.redis (one script call); else on this host: in this process
            # with one worker, or a frame each way on the worker's channel to the writer process.
            held = await keys.admit_shared(s.keys, client_key, state)
        except ProxyError as e:
            _count(app, client_key.name, "refused_" + ("rate" if e.status == 429 else "budget"))
            return _refuse(request, e)

    shedder.in_flight += 1
    per_peer[peer] = per_peer.get(peer, 0) + 1
    if ident is not None:
        per_key[ident] = per_key.get(ident, 0) + 1
    try:
        resp = await handler(request)
        if request["lynkr_close"]:
            resp.force_close()
        return resp
    finally:
        shedder.in_flight -= 1
        n = per_peer[peer] - 1
        if n:
            per_peer[peer] = n
        else:
            del per_peer[peer]
        if held is not None:
            # On this host, done before the next await (before aiohttp writes a non-streamed answer);
            # in Redis, shielded: a cancelled request still ends its in-flight count and pays.
            pending = keys.release_held(s.keys, held, request.get("exchange"), state)
            if pending is not None:
                await asyncio.shield(pending)
        if ident is not None:
            n = per_key[ident] - 1
            if n:
                per_key[ident] = n
            else:
                del per_key[ident]


def _count(app: web.Application, key: str, outcome: str) -> None:
    """Per-key refusals for /metrics (the key's name, never what was sent)."""
    counts = app["key_refusals"]
    counts[(key, outcome)] = counts.get((key, outcome), 0) + 1


def setup(app: web.Application) -> None:
    install_log_redaction()
    shedder = Shedder(app)
    app["shedder"] = shedder
    app["per_key_in_flight"] = {}
    app["per_peer_in_flight"] = {}
    app["key_refusals"] = {}          # (key name, outcome) -> count, read by /metrics
    app["security_cache"] = {}
    app.middlewares.append(guard)

    async def lifecycle(app):
        shedder.start()
        yield
        await shedder.stop()

    app.cleanup_ctx.append(lifecycle)
