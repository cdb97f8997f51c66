"""Connections, before any request: caps per peer and in all, and client-side timeouts.

    server:
      timeouts: {headers_s: 10, body_s: 60, idle_s: 60}
      max_connections: 16000            # default: the fd limit less a reserve for upstreams and files
      max_connections_per_peer: 256     # one address cannot take every connection
      max_in_flight_per_peer: 256       # nor every request slot (lynkr.server.security)

A slow client costs a connection (a file descriptor) for as long as it is allowed to dawdle, and
aiohttp has no deadline for a request's headers or body. Every connection of `lynkr run` passes
through `ConnectionGuard`: one past a cap is closed as it is accepted; one that started a request's
headers and has not finished them within `headers_s`, or that sat idle `idle_s`, is closed by a
watchdog that looks once a second; a body not received within `body_s` of its headers is a 408 in
the client's shape (`body_deadline`, used where the handler reads it). A request counts towards load
shedding only once its body is in: slow bodies hold connections, never the request slots
well-behaved clients need.
"""
from __future__ import annotations

import asyncio
import contextlib
import resource

from aiohttp import web

from lynkr.errors import ProxyError

__all__ = ["setup", "ConnectionGuard", "GuardedSite", "body_deadline", "default_max_connections",
           "DEFAULT_TIMEOUTS", "DEFAULT_PER_PEER"]

DEFAULT_TIMEOUTS = {"headers_s": 10.0, "body_s": 60.0, "idle_s": 60.0}
DEFAULT_PER_PEER = 256
WATCH_EVERY_S = 1.0


def default_max_connections() -> int:
    """The soft fd limit less a reserve (upstream pools, telemetry, the model files): accepting
    until `accept()` fails with EMFILE would leave no descriptor to talk to an upstream."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(32, soft - max(256, soft // 5))


def _server_cfg(app: web.Application) -> dict:
    p = app["engine"].current
    return (p.config.get("server") or {}) if p is not None else {}


def timeouts(app: web.Application) -> dict:
    return {**DEFAULT_TIMEOUTS, **(_server_cfg(app).get("timeouts") or {})}


class _Conn:
    __slots__ = ("peer", "transport", "busy", "idle_since", "partial_since")

    def __init__(self, peer: str, transport, now: float):
        self.peer = peer
        self.transport = transport
        self.busy = 0                 # requests of this connection inside the app
        self.idle_since = now
        self.partial_since: float | None = None    # bytes of a request's head arrived while idle


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, admitted (or not) and watched."""

    __slots__ = ("guard", "make", "inner", "conn")

    def __init__(self, guard: "ConnectionGuard", make):
        self.guard = guard
        self.make = make
        self.inner = None
        self.conn: _Conn | None = None

    def connection_made(self, transport) -> None:
        self.conn = self.guard.admit(transport)
        if self.conn is None:
            transport.abort()
            return
        self.inner = self.make()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        c = self.conn
        if c is not None and not c.busy and c.partial_since is None:
            c.partial_since = self.guard.loop.time()
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc) -> None:
        if self.conn is not None:
            self.guard.release(self.conn)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class ConnectionGuard:
    """Per-process connection accounting for one app (`app["connections"]`)."""

    def __init__(self, app: web.Application):
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None
        self.conns: dict = {}          # transport -> _Conn
        self.per_peer: dict[str, int] = {}
        self.refused = 0               # connections closed at accept (over a cap)
        self.timed_out = 0             # connections closed by the watchdog
        self._task: asyncio.Task | None = None

    def protocol_factory(self, make):
        return lambda: _Guarded(self, make)

    def admit(self, transport) -> _Conn | None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        server = _server_cfg(self.app)
        peer = _peer(transport)
        n_peer = self.per_peer.get(peer, 0)
        if (len(self.conns) >= (server.get("max_connections") or default_max_connections())
                or n_peer >= (server.get("max_connections_per_peer") or DEFAULT_PER_PEER)):
            self.refused += 1
            return None
        self.per_peer[peer] = n_peer + 1
        c = self.conns[transport] = _Conn(peer, transport, self.loop.time())
        return c

    def release(self, c: _Conn) -> None:
        if self.conns.pop(c.transport, None) is None:
            return
        n = self.per_peer.get(c.peer, 1) - 1
        if n:
            self.per_peer[c.peer] = n
        else:
            self.per_peer.pop(c.peer, None)

    # -- requests -------------------------------------------------------------------------
    def enter(self, request: web.Request) -> _Conn | None:
        c = self.conns.get(request.transport)
        if c is not None:
            c.busy += 1
            c.partial_since = None
        return c

    def leave(self, c: _Conn | None) -> None:
        if c is not None:
            c.busy -= 1
            c.idle_since = self.loop.time()

    # -- the watchdog ---------------------------------------------------------------------
    def sweep(self) -> int:
        """Close connections past their header or idle deadline; the number closed."""
        t = timeouts(self.app)
        now = self.loop.time() if self.loop is not None else 0.0
        late = [c for c in self.conns.values() if not c.busy and (
            (c.partial_since is not None and now - c.partial_since > t["headers_s"])
            or (c.partial_since is None and now - c.idle_since > t["idle_s"]))]
        for c in late:
            c.transport.close()
        self.timed_out += len(late)
        return len(late)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            self.sweep()

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = self.loop.create_task(self._watch(), name="lynkr-connection-watchdog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def status(self) -> dict:
        return {"connections": len(self.conns), "peers": len(self.per_peer), "refused": self.refused,
                "timed_out": self.timed_out}


def _peer(transport) -> str:
    name = transport.get_extra_info("peername")
    return str(name[0]) if isinstance(name, tuple) and name else "local"


class GuardedSite(web.TCPSite):
    """A TCPSite whose every connection goes through the app's ConnectionGuard."""

    async def start(self) -> None:
        await web.BaseSite.start(self)      # registers the site with its runner
        server = self._runner.server
        guard: ConnectionGuard = self._runner.app["connections"]
        self._server = await asyncio.get_running_loop().create_server(
            guard.protocol_factory(server), self._host, self._port, ssl=self._ssl_context,
            backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port)


@contextlib.asynccontextmanager
async def body_deadline(request: web.Request):
    """Bound the time a request's body takes to arrive (server.timeouts.body_s) and keep the
    request out of the shedder's count while it does."""
    shedder = request.app.get("shedder")
    if shedder is not None:
        shedder.reading += 1
    limit = timeouts(request.app)["body_s"]
    try:
        async with asyncio.timeout(limit):
            yield
    except TimeoutError:
        request["lynkr_close"] = True      # security.guard closes the connection after answering
        raise ProxyError(408, f"the request body did not arrive within {limit:g}s", type="timeout_error",
                         retryable=False) from None
    finally:
        if shedder is not None:
            shedder.reading -= 1


def setup(app: web.Application) -> None:
    guard = ConnectionGuard(app)
    app["connections"] = guard

    async def lifecycle(app):
        guard.start()
        yield
        await guard.stop()

    app.cleanup_ctx.append(lifecycle)
