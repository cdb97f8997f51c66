"""State shared by the replicas of a fleet, in Redis (or Valkey): `state: {redis: URL}`.

    state = SharedState.from_config(cfg.data["state"])      # one per process (per event loop)
    await state.check()                                     # start-up: AuthRefused stops the start
    got = await state.run("exact.get", lambda r: r.get(key))     # raises Unavailable when it cannot

What goes through it (docs/cache.md, teams.md, reliability.md, routing.md: "Shared across
replicas"): the exact cache's answers, the semantic cache's entries, the key and team counters,
breaker openings and session tier floors. Each user keeps its own local state as well and falls
back to it when `run` raises `Unavailable`: Redis makes replicas agree, it is never what a request
waits on to be answered.

The circuit. Every command is bounded by `timeout_s` (socket and asyncio deadlines, no retries in
the client). The first failure opens the circuit: from then on `run` raises `Unavailable` at once
(counted as a fallback, no network), and one background task pings Redis with growing pauses
(0.25 s … 5 s) until it answers; then the circuit closes, `on_up` callbacks run (a semantic cache
catches up on what it missed) and `reconnects` counts it. So an unreachable or hung Redis costs
one request at most `timeout_s` per process, then nothing.

`redis` (redis-py) is imported only when a pipeline sets `state.redis`.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

from lynkr.config.urls import REDIS_SCHEMES, redis_url_problem as url_problem

__all__ = ["SharedState", "Unavailable", "AuthRefused", "display_url", "url_problem", "DEFAULT_TIMEOUT_S",
           "check_url_sync"]

log = logging.getLogger("lynkr.state")

DEFAULT_TIMEOUT_S = 0.5
MAX_CONNECTIONS = 32      # per process
BACKSTOP_S = 10.0         # socket deadlines behind run()'s
MAX_PENDING = 10_000      # undo writes queued for the next reconnect (when_back)
_RETRY_PAUSES = (0.25, 0.5, 1.0, 2.0, 5.0)


class Unavailable(Exception):
    """Redis could not be used for this call (down, slow, circuit open): use local state."""


class AuthRefused(Exception):
    """Redis refused the credentials of the URL (a configuration error, not an outage)."""


def display_url(url: str) -> str:
    """The URL without its password: for logs, errors, /health."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.password is None and not parts.username:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _client_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((REDIS_SCHEMES[parts.scheme], *parts[1:]))


def _client(url: str, timeout: float, *, sync: bool = False):
    from redis.backoff import NoBackoff
    if sync:
        import redis
        from redis.retry import Retry
        return redis.Redis.from_url(_client_url(url), socket_timeout=timeout, socket_connect_timeout=timeout,
                                    retry=Retry(NoBackoff(), 0))
    import redis.asyncio as redis_asyncio
    from redis.asyncio.retry import Retry
    # No retries inside the client: a failure must reach the circuit at once, not after three
    # reconnect attempts with backoff (redis-py's default), or one request would wait seconds.
    # A blocking pool: a burst waits for one of its connections (within the timeout) instead of
    # failing with "too many connections". Each call is bounded by `run`'s own deadline; the
    # socket's are only a backstop, long enough for the bulk reads made off the request path.
    pool = redis_asyncio.BlockingConnectionPool.from_url(
        _client_url(url), max_connections=MAX_CONNECTIONS, timeout=timeout, socket_timeout=max(timeout, BACKSTOP_S),
        socket_connect_timeout=max(timeout, BACKSTOP_S), retry=Retry(NoBackoff(), 0), health_check_interval=0)
    return redis_asyncio.Redis(connection_pool=pool)


def _is_auth(e: BaseException) -> bool:
    from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError, ResponseError
    if isinstance(e, (AuthenticationError, AuthenticationWrongNumberOfArgsError)):
        return True
    return isinstance(e, ResponseError) and str(e).startswith(("WRONGPASS", "NOAUTH", "NOPERM"))


def check_url_sync(url: str, timeout: float = 2.0) -> str | None:
    """Before `lynkr run` forks: AuthRefused for refused credentials; a warning (returned) when Redis
    does not answer (the server starts degraded); None when it answers."""
    client = _client(url, timeout, sync=True)
    try:
        client.ping()
        return None
    except Exception as e:
        if _is_auth(e):
            raise AuthRefused(_auth_message(url, e)) from None
        return f"Redis at {display_url(url)} does not answer ({type(e).__name__}: {e}); starting with local state, reconnecting in the background"
    finally:
        client.close()


def _auth_message(url: str, e: BaseException) -> str:
    return f"Redis at {display_url(url)} refused the credentials in the URL ({e})"


class SharedState:
    """One Redis client for one process (its event loop), behind a circuit. See the module docstring."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, key_prefix: str = "lynkr"):
        self.url = url
        self.where = display_url(url)
        self.timeout = float(timeout_s)
        self.prefix = key_prefix + ":"
        self.instance = uuid.uuid4().hex[:12]       # this process, as other replicas see it
        self.redis = _client(url, self.timeout)
        self.up = True
        self.last_error: str | None = None
        self.down_since: float | None = None
        self.errors: dict[str, int] = {}            # op -> failed calls (network, timeout, refused)
        self.fallbacks: dict[str, int] = {}         # op -> calls answered locally (the circuit was open)
        self.reconnects = 0
        self.on_up: list[Callable[[], Awaitable[None] | None]] = []
        self._once: list[Callable[[], Awaitable[None]]] = []     # for the next reconnect only
        self._tasks: set[asyncio.Task] = set()
        self._scripts: dict[str, Any] = {}
        self._probe: asyncio.Task | None = None
        self._closed = False

    @classmethod
    def from_config(cls, conf: dict) -> "SharedState":
        return cls(conf["redis"], timeout_s=conf.get("timeout_s", DEFAULT_TIMEOUT_S),
                   key_prefix=conf.get("key_prefix", "lynkr"))

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def script(self, text: str):
        """A Lua script to call as `await script(keys=…, args=…)` inside `run`: EVALSHA, and its
        text once when Redis does not know it (after a Redis restart)."""
        got = self._scripts.get(text)
        if got is None:
            got = self._scripts[text] = self.redis.register_script(text)
        return got

    # -- start ---------------------------------------------------------------------------------
    async def check(self) -> None:
        """Ping once. AuthRefused when the credentials are refused; unreachable opens the circuit
        (the process starts degraded and reconnects by itself), with a warning."""
        try:
            async with asyncio.timeout(max(self.timeout, 1.0)):
                await self.redis.ping()
        except Exception as e:
            if _is_auth(e):
                raise AuthRefused(_auth_message(self.url, e)) from None
            log.warning("Redis at %s does not answer (%s); serving with local state, reconnecting in the background",
                        self.where, _describe(e))
            self._trip("start", e)

    # -- calls ---------------------------------------------------------------------------------
    async def run(self, op: str, fn: Callable[[Any], Awaitable[Any]], *, timeout: float | None = None) -> Any:
        """`await fn(redis_client)` within the timeout (`timeout_s`, or longer for a bulk read
        off the request path), or Unavailable (counted)."""
        if not self.up:
            self.fallbacks[op] = self.fallbacks.get(op, 0) + 1
            raise Unavailable(self.last_error)
        try:
            async with asyncio.timeout(timeout or self.timeout):
                return await fn(self.redis)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            from redis.exceptions import ResponseError
            self.errors[op] = self.errors.get(op, 0) + 1
            self.fallbacks[op] = self.fallbacks.get(op, 0) + 1
            if isinstance(e, ResponseError) and not _is_auth(e):
                # Redis answered: a bad command is this call's problem, not an outage.
                log.error("Redis %s failed: %s", op, e)
                raise Unavailable(str(e)) from None
            self._trip(op, e)
            raise Unavailable(self.last_error) from None

    def spawn(self, op: str, fn: Callable[[Any], Awaitable[Any]]) -> None:
        """`run` without waiting for it (a write nobody waits on); failures are counted."""
        if not self.up:
            self.fallbacks[op] = self.fallbacks.get(op, 0) + 1
            return
        self.background(self._quiet(op, fn))

    async def _quiet(self, op, fn) -> None:
        try:
            await self.run(op, fn)
        except Unavailable:
            pass

    def when_back(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run `fn()` once, when Redis answers again: to undo a write that timed out but that Redis
        may still have carried out (bounded: past MAX_PENDING the oldest are dropped)."""
        self._once.append(fn)
        del self._once[:-MAX_PENDING]

    def background(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # -- the circuit ---------------------------------------------------------------------------
    def _trip(self, op: str, e: BaseException) -> None:
        self.last_error = f"{op}: {_describe(e)}"
        if not self.up:
            return
        self.up = False
        self.down_since = time.time()
        log.warning("Redis at %s unavailable (%s); using local state until it answers again", self.where,
                    self.last_error)
        if not self._closed:
            try:
                self._probe = asyncio.get_running_loop().create_task(self._reconnect(), name="lynkr-redis-reconnect")
            except RuntimeError:       # no loop (a synchronous caller): the next async call retries
                self.up = True

    def trip(self, op: str, e: BaseException) -> None:
        """For users with their own connection (a pub/sub listener) that saw Redis go away."""
        self.errors[op] = self.errors.get(op, 0) + 1
        self._trip(op, e)

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._closed:
            await asyncio.sleep(_RETRY_PAUSES[min(attempt, len(_RETRY_PAUSES) - 1)])
            attempt += 1
            try:
                async with asyncio.timeout(max(self.timeout, 0.5)):
                    await self.redis.ping()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if _is_auth(e):
                    self.last_error = f"reconnect: {_describe(e)}"
                continue
            self.up = True
            self.down_since = None
            self.reconnects += 1
            log.warning("Redis at %s answers again; state is shared again", self.where)
            once, self._once = self._once, []
            for cb in list(self.on_up) + once:
                try:
                    got = cb()
                    if asyncio.iscoroutine(got):
                        self.background(got)
                except Exception:
                    log.exception("a Redis reconnect callback failed")
            return

    def status(self) -> dict:
        out = {"backend": "redis", "url": self.where, "up": self.up}
        if not self.up:
            out["error"] = self.last_error
            out["down_s"] = round(time.time() - (self.down_since or time.time()), 1)
        return out

    async def aclose(self) -> None:
        self._closed = True
        tasks = [t for t in (self._probe, *self._tasks) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.redis.aclose()
        except Exception:
            pass


def _describe(e: BaseException) -> str:
    if isinstance(e, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}"[:300]

