"""MCP servers run by the proxy: one `McpServer` per `mcp.servers` entry, kept in a `Pool` that
outlives pipeline reloads.

- Lazy: nothing starts at load; the first request that needs a server's tools starts it (bounded
  by `start_timeout_s`) and lists its tools.
- One owner task per server holds the SDK client (its transport is an anyio task group, which must
  be entered and left by the same task); calls from request tasks go through the session.
- A server that fails to start, dies or stops answering is closed and tried again after a backoff
  (1 s, doubling, at most 60 s). Its last tool listing stays offered meanwhile — the tool list, and
  with it the provider's prompt-cache prefix, does not change because a server restarts — and a
  call in that window is a tool error for the model.
- The pool is keyed by name and configuration: a reload keeps a server whose entry did not change
  running, starts a new or changed one on first use, and stops the ones no load uses any more.
- A stdio server's command and environment come only from the pipeline file; it gets the env it is
  given plus the SDK's short safe list (HOME, PATH, SHELL, TERM, USER, LOGNAME), never Lynkr's own.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field

__all__ = ["McpServer", "Pool", "ToolSpec", "ServerDown", "pool_for", "describe_error", "answered_error"]

log = logging.getLogger("lynkr.mcp")

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
MAX_MESSAGE_BYTES = 8 * 1024 * 1024     # one message from a server; a larger result becomes a tool error


class ServerDown(Exception):
    """The server is not running (starting failed, it died, or it is waiting to be restarted)."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool a server offers, as it listed it."""
    server: str
    name: str
    description: str
    input_schema: dict


@dataclass
class _Counters:
    starts: int = 0
    failures: int = 0
    calls: dict = field(default_factory=dict)     # outcome -> count


class McpServer:
    def __init__(self, name: str, spec: dict):
        self.name = name
        self.spec = spec
        self.state = "idle"         # idle | starting | ready | backoff | stopped
        self.tools: list[ToolSpec] = []
        self.rejected: dict[str, str] = {}      # tool -> why it is not offered
        self.last_error: str | None = None
        self.counters = _Counters()
        self._backoff = 0.0
        self._next_try = 0.0
        self._client = None
        self._owner: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._loop = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def ensure(self, accept) -> bool:
        """Running (starting it if due); `accept(server, tools) -> (offered, rejected)` filters a new listing."""
        if self.state == "ready":
            return True
        if self.state == "stopped" or time.monotonic() < self._next_try:
            return False
        if self._lock is None or self._loop is not asyncio.get_running_loop():
            self._lock, self._loop = asyncio.Lock(), asyncio.get_running_loop()
        async with self._lock:
            if self.state == "ready":
                return True
            if self.state == "stopped" or time.monotonic() < self._next_try:
                return False
            return await self._start(accept)

    async def _start(self, accept) -> bool:
        self.state = "starting"
        self.counters.starts += 1
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._owner = asyncio.get_running_loop().create_task(self._own(ready, self._stop, accept))
        try:
            await asyncio.wait_for(asyncio.shield(ready), float(self.spec.get("start_timeout_s", 20)))
        except asyncio.TimeoutError:
            await self.failed(f"did not start within {self.spec.get('start_timeout_s', 20)} s")
            return False
        except Exception as e:
            await self.failed(f"could not start: {describe_error(e)}")
            return False
        self.state = "ready"
        self._backoff = 0.0
        self.last_error = None
        log.info("mcp server %s started: %d tools", self.name, len(self.tools))
        return True

    async def _own(self, ready: asyncio.Future, stop: asyncio.Event, accept) -> None:
        from mcp import Client
        try:
            async with Client(self._target(), read_timeout_seconds=float(self.spec.get("start_timeout_s", 20))) as client:
                listed = await _list_all(client)
                self.tools, self.rejected = accept(self, listed)
                self._client = client
                ready.set_result(True)
                await stop.wait()
        except BaseException as e:     # noqa: BLE001 — the owner reports, it never raises into the loop
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else RuntimeError(repr(e)))
            elif not stop.is_set():
                self._client = None
                self._schedule_restart(f"connection lost: {describe_error(e)}")
            if isinstance(e, asyncio.CancelledError):
                raise
        finally:
            self._client = None
            if not stop.is_set() and self.state == "ready":
                self._schedule_restart("connection closed")

    def _target(self):
        """The SDK transport: both bound one message to MAX_MESSAGE_BYTES."""
        if self.spec.get("url"):
            from mcp.client.streamable_http import streamable_http_client
            return streamable_http_client(self.spec["url"], max_sse_event_size=MAX_MESSAGE_BYTES)
        from lynkr.mcp.stdio import capped_stdio
        env = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (self.spec.get("env") or {}).items()}
        return capped_stdio(list(self.spec["command"]), env, self.spec.get("cwd"), MAX_MESSAGE_BYTES)

    def _schedule_restart(self, why: str) -> None:
        if self.state == "stopped":
            return
        self.counters.failures += 1
        self.last_error = why
        self._backoff = min(BACKOFF_MAX_S, self._backoff * 2 if self._backoff else BACKOFF_FIRST_S)
        self._next_try = time.monotonic() + self._backoff
        self.state = "backoff"
        log.warning("mcp server %s: %s; next try in %.0f s", self.name, why, self._backoff)

    async def failed(self, why: str) -> None:
        """Close it and try again after the backoff (a crash, a timeout, a failed start)."""
        if self.state == "stopped":
            return
        self._schedule_restart(why)
        await self._close()

    async def stop(self) -> None:
        """Stopped for good (no load uses it any more, or shutdown)."""
        self.state = "stopped"
        await self._close()

    async def _close(self) -> None:
        owner, self._owner = self._owner, None
        self._client = None
        if self._stop is not None:
            self._stop.set()
        if owner is None or owner.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(owner), 5)
        except (asyncio.TimeoutError, Exception):
            owner.cancel()
            try:
                await owner
            except BaseException:      # noqa: BLE001
                pass

    # -- calls -------------------------------------------------------------------------------
    async def call(self, tool: str, arguments: dict, timeout_s: float):
        """The SDK's CallToolResult. Raises ServerDown, asyncio.TimeoutError or the transport's error."""
        client = self._client
        if self.state != "ready" or client is None:
            raise ServerDown(f"server {self.name!r} is {self.state}" + (f" ({self.last_error})" if self.last_error else ""))
        return await asyncio.wait_for(client.call_tool(tool, arguments, read_timeout_seconds=timeout_s), timeout_s)

    def count(self, outcome: str) -> None:
        self.counters.calls[outcome] = self.counters.calls.get(outcome, 0) + 1

    def snapshot(self) -> dict:
        return {"state": self.state, "transport": "http" if self.spec.get("url") else "stdio",
                "tools": [t.name for t in self.tools], "rejected": dict(self.rejected),
                "starts": self.counters.starts, "failures": self.counters.failures,
                "calls": dict(self.counters.calls), "last_error": self.last_error}


async def _list_all(client) -> list:
    tools, cursor = [], None
    for _page in range(100):
        result = await client.list_tools(cursor=cursor)
        tools += result.tools
        cursor = getattr(result, "next_cursor", None)
        if not cursor:
            break
    return tools


def answered_error(e: BaseException) -> bool:
    """The server answered the call with a JSON-RPC error (it is still running), as opposed to a
    broken connection."""
    from mcp.shared.exceptions import MCPError
    from mcp_types.jsonrpc import CONNECTION_CLOSED
    return isinstance(e, MCPError) and e.code != CONNECTION_CLOSED


def describe_error(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe_error(x) for x in e.exceptions[:3])
    message = getattr(e, "message", None) or str(e)
    return f"{type(e).__name__}: {message}" if message else type(e).__name__


class Pool:
    """Servers by (name, configuration), shared by every load of the pipeline; a server runs while
    some load uses it."""

    def __init__(self):
        self._lock = threading.Lock()       # loads are built in a worker thread
        self._servers: dict[tuple[str, str], McpServer] = {}
        self._users: dict[tuple[str, str], int] = {}

    def acquire(self, name: str, spec: dict) -> McpServer:
        key = (name, json.dumps(spec, sort_keys=True, default=str))
        with self._lock:
            server = self._servers.get(key)
            if server is None:
                server = self._servers[key] = McpServer(name, spec)
            self._users[key] = self._users.get(key, 0) + 1
            return server

    async def release(self, server: McpServer) -> None:
        key = (server.name, json.dumps(server.spec, sort_keys=True, default=str))
        with self._lock:
            left = self._users.get(key, 0) - 1
            if left > 0:
                self._users[key] = left
                return
            self._users.pop(key, None)
            self._servers.pop(key, None)
        await server.stop()

    def snapshot(self) -> dict:
        with self._lock:
            servers = list(self._servers.values())
        return {s.name: s.snapshot() for s in sorted(servers, key=lambda s: s.name)}


def pool_for(shared: dict) -> Pool:
    """The engine's pool (`shared` outlives reloads)."""
    pool = shared.get("mcp_servers")
    if pool is None:
        pool = shared["mcp_servers"] = Pool()
    return pool
