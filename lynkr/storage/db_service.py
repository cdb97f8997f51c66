"""DuckDB file work (telemetry rows, cache entries) and token counts, done by one process for all
of `lynkr run`.

    call("telemetry.write", path, {"files": {"requests": ..., "events": ...}})   # from a worker thread

`lynkr run` starts `python -m lynkr.storage.db_service SOCKET` before its workers and tells them the
socket in $LYNKR_DB_SOCKET. Each `call` then goes there, as one length-prefixed orjson frame,
and waits for the answer; without the variable (tests, `lynkr replay`, library use) it runs the
operation in the calling thread.

Why a process: DuckDB in a server worker cost ~40 MB of library pages and grew the worker by
~80 MB more over 50,000 requests (its allocations and the rows' interleave with the proxy's in
one heap; malloc_trim, allocator settings and a fresh instance per batch did not stop it,
docs/performance.md). The worker now never imports DuckDB, and `--workers N` have one writer.

Operations are plain functions `fn(path, payload) -> result` registered with `@operation(name)`
in the module that owns the file's schema (lynkr.telemetry.writer, lynkr.storage.cache_store); the
service imports those modules. Payloads and results must survive orjson (datetimes come back
as ISO strings). Operations on one file run one at a time in the service, in the order they arrive;
`@operation(name, exclusive=False)` ones (token counts) hold no lock and run as they come.

Token counts live here too: cl100k_base is ~28 MB resident (tiktoken's Rust tables), once for
the host instead of once per worker. A worker asks only for texts it has not counted before
(lynkr.kit.tokens keeps the answers), so after an agent's first turn that is the turn's new text.

When the service cannot be reached, `call` logs it once and runs the operation locally, so a
crashed writer process costs memory, not telemetry.

    ch = await channel()                          # from a worker's event loop: no thread, one socket
    result = await ch.request("teams.admit", "", payload)
    ch.send("teams.release", "", payload)         # no answer awaited

A `Channel` is a worker's own connection for small `exclusive=False` operations on the request
path (client-key limits): its frames go from the event loop straight to the socket, with no
thread-pool handoff, and `send` does not wait at all. In the service every channel is served by
one thread over epoll, and of the frames that thread finds readable at once it applies the sent
ones (no answer) before the requests: a `send` that left one worker before another worker's
request was even written is therefore applied first (lynkr.teams.ledger relies on that: a release
that left before the client had its answer precedes the client's next admission).
"""
from __future__ import annotations

import asyncio
import collections
import importlib
import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable

import orjson

from lynkr.kit import tokens
from lynkr.kit.heap import fix_mmap_threshold, trim

__all__ = ["operation", "call", "remote", "DBServiceError", "start_service", "ENV", "channel", "connect_channel", "current_channel", "Channel"]

log = logging.getLogger("lynkr.db")

ENV = "LYNKR_DB_SOCKET"
# Modules whose operations the service must know (importing them registers them).
OPERATION_MODULES = ("lynkr.telemetry.writer", "lynkr.telemetry.lake", "lynkr.storage.cache_store", "lynkr.memory.store", "lynkr.teams.ledger")

_ops: dict[str, Callable[[str, Any], Any]] = {}
_unlocked: set[str] = set()      # operations that touch no file
SLOW_S = 2.0     # an operation slower than this is logged: writes are falling behind
_HEADER = struct.Struct("!I")


class DBServiceError(Exception):
    """The operation failed in the service (the message is the service's error)."""


def operation(name: str, *, exclusive: bool = True):
    def register(fn):
        _ops[name] = fn
        if not exclusive:
            _unlocked.add(name)
        return fn
    return register


def remote() -> bool:
    """Whether `call` goes to a service process."""
    return bool(os.environ.get(ENV))


# -- token counts: the one tokenizer of the host lives here ---------------------------------------

_TOKENS_TIMEOUT_S = 30.0
_tokens_failure_logged = False


@operation("tokens.count", exclusive=False)
def _count_tokens(_path: str, texts: list[str]) -> list[int]:
    return tokens.count_here(texts)


def _count_in_service(texts: list[str]) -> list[int] | None:
    """lynkr.kit.tokens' counts from the writer process; None (count here) without one, or when a
    slow or failed answer would otherwise lose them."""
    if not remote():
        return None
    try:
        return call("tokens.count", "", texts, timeout=_TOKENS_TIMEOUT_S)
    except DBServiceError as e:
        global _tokens_failure_logged
        if not _tokens_failure_logged:
            _tokens_failure_logged = True
            log.warning("token count in the writer process failed (%s); counting here", e)
        return None


tokens.remote_count = _count_in_service


# -- the caller's side --------------------------------------------------------------------------

_local = threading.local()
_local_lock = threading.RLock()      # in-process, operations run one at a time too
_unreachable_logged = False


def call(name: str, path: str, payload: Any = None, *, timeout: float = 60.0) -> Any:
    sock_path = os.environ.get(ENV)
    if not sock_path:
        return _run_here(name, path, payload)
    try:
        return _remote(sock_path, name, path, payload, timeout)
    except TimeoutError:
        # The service may still finish it: doing it here too could write a batch twice.
        _forget_connection()
        raise DBServiceError(f"{name} on {path}: no answer from the writer process in {timeout:.0f} s") from None
    except (OSError, ConnectionError) as e:
        _forget_connection()
        global _unreachable_logged
        if not _unreachable_logged:
            _unreachable_logged = True
            log.warning("the writer process at %s is unreachable (%s); writing and counting tokens in this process", sock_path, e)
        return _run_here(name, path, payload)


def _run_here(name: str, path: str, payload: Any) -> Any:
    if name in _unlocked:
        return _ops[name](path, payload)
    with _local_lock:
        return _ops[name](path, payload)


def _remote(sock_path: str, name: str, path: str, payload: Any, timeout: float) -> Any:
    s = _connection(sock_path)
    s.settimeout(timeout)
    frame = orjson.dumps({"op": name, "path": path, "payload": payload},
                         option=orjson.OPT_SERIALIZE_NUMPY, default=str)
    s.sendall(_HEADER.pack(len(frame)) + frame)
    answer = orjson.loads(_read_frame(s))
    if not answer.get("ok"):
        raise DBServiceError(answer.get("error") or "failed")
    return answer.get("result")


def _connection(sock_path: str) -> socket.socket:
    # One connection per thread and process: a forked worker must not share its parent's socket.
    conn = getattr(_local, "conn", None)
    if conn is not None and conn[0] == os.getpid() and conn[1] == sock_path:
        return conn[2]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    _local.conn = (os.getpid(), sock_path, s)
    return s


def _forget_connection() -> None:
    conn = getattr(_local, "conn", None)
    _local.conn = None
    if conn is not None and conn[0] == os.getpid():
        try:
            conn[2].close()
        except OSError:
            pass


def _read_frame(s: socket.socket) -> bytes:
    (n,) = _HEADER.unpack(_read_exactly(s, _HEADER.size))
    return _read_exactly(s, n)


def _read_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return bytes(buf)


# -- a worker's channel: from the event loop, no thread ----------------------------------------------

_HELLO = orjson.dumps({"op": "db.channel"})
_channels: dict = {}        # (pid, loop) -> Channel, or the Future of one being connected


class Channel(asyncio.Protocol):
    """One event loop's connection to the service for `exclusive=False` operations. Answers come
    in the order of the requests (one thread serves every channel), so a queue of futures pairs them."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[asyncio.Future] = collections.deque()
        self.buf = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= 4:
            (n,) = _HEADER.unpack_from(buf)
            if len(buf) < 4 + n:
                return
            answer = orjson.loads(memoryview(buf)[4:4 + n])
            del buf[:4 + n]
            if self.waiting:
                fut = self.waiting.popleft()
                if not fut.done():
                    fut.set_result(answer)

    def connection_lost(self, exc) -> None:
        self.transport = None
        err = ConnectionError(f"the writer process closed the channel ({exc or 'eof'})")
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(err)

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    async def request(self, name: str, path: str, payload: Any = None, *, timeout: float = 5.0) -> Any:
        """The operation's result. ConnectionError when the channel is gone, DBServiceError when the
        operation failed or did not answer in `timeout` (the channel is then closed: a late answer
        would pair with the next request)."""
        fut = asyncio.get_running_loop().create_future()
        self._write({"op": name, "path": path, "payload": payload})
        self.waiting.append(fut)
        try:
            async with asyncio.timeout(timeout):
                answer = await fut
        except TimeoutError:
            self.close()
            raise DBServiceError(f"{name}: no answer from the writer process in {timeout:.0f} s") from None
        if not answer.get("ok"):
            raise DBServiceError(answer.get("error") or "failed")
        return answer.get("result")

    def send(self, name: str, path: str, payload: Any = None) -> None:
        """Run the operation without waiting for it (nor hearing of its failure, which the service logs)."""
        self._write({"op": name, "path": path, "payload": payload, "reply": False})

    def _write(self, req: dict) -> None:
        if not self.open:
            raise ConnectionError("the channel to the writer process is closed")
        frame = orjson.dumps(req, default=str)
        self.transport.write(_HEADER.pack(len(frame)) + frame)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def channel() -> Channel | None:
    """This event loop's channel to the service, connected on first use (and again after a loss);
    None without a service, or when it cannot be reached (logged once, as for `call`)."""
    sock_path = os.environ.get(ENV)
    if not sock_path:
        return None
    loop = asyncio.get_running_loop()
    key = (os.getpid(), loop)
    ch = _channels.get(key)
    if isinstance(ch, Channel) and ch.open:
        return ch
    if isinstance(ch, asyncio.Future):        # a burst of first requests: one connection for them all
        return await asyncio.shield(ch)
    connecting = _channels[key] = loop.create_future()
    ch = None
    try:
        ch = await connect_channel(sock_path)
    except OSError as e:
        global _unreachable_logged
        if not _unreachable_logged:
            _unreachable_logged = True
            log.warning("the writer process at %s is unreachable (%s); counting in this process", sock_path, e)
    finally:
        if ch is None:
            _channels.pop(key, None)
        else:
            _channels[key] = ch
        connecting.set_result(ch)
    return ch


async def connect_channel(sock_path: str | None = None) -> Channel:
    """A new channel to the service (OSError when it cannot be reached); `channel()` keeps one per loop."""
    _, ch = await asyncio.get_running_loop().create_unix_connection(Channel, sock_path or os.environ[ENV])
    ch.transport.write(_HEADER.pack(len(_HELLO)) + _HELLO)
    return ch


def current_channel() -> Channel | None:
    """This event loop's channel if it is open, without connecting (for callers that cannot wait)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    ch = _channels.get((os.getpid(), loop))
    return ch if isinstance(ch, Channel) and ch.open else None


# -- starting it (lynkr run) ----------------------------------------------------------------------

def start_service(timeout: float = 30.0) -> subprocess.Popen | None:
    """Start the writer process and point this process (and the workers it forks) at it.
    None, and everything stays in-process, when it does not come up."""
    sock_path = os.path.join(tempfile.mkdtemp(prefix="lynkr-db-"), "db.sock")
    proc = subprocess.Popen([sys.executable, "-m", "lynkr.storage.db_service", sock_path, str(os.getpid())],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(sock_path)
            os.environ[ENV] = sock_path
            return proc
        except OSError:
            time.sleep(0.02)
    log.warning("the writer process did not start; telemetry, cache files and token counts are done in-process")
    stop_service(proc)
    return None


def stop_service(proc: subprocess.Popen | None, timeout: float = 60.0) -> None:
    """After the workers are gone: the service finishes the operation it is on and exits."""
    if proc is None:
        return
    os.environ.pop(ENV, None)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the service --------------------------------------------------------------------------------

def serve(sock_path: str, parent: int) -> None:
    fix_mmap_threshold()
    for name in OPERATION_MODULES:
        importlib.import_module(name)
    # One operation at a time per file, whoever sent it; different files (telemetry, cache) in
    # parallel, as their writer threads were in-process: DuckDB works without the GIL, and one
    # lock for both let a slow cache batch hold every worker's telemetry behind it.
    locks: dict[str, threading.Lock] = {}
    guard = threading.Lock()

    def lock_for(path: str) -> threading.Lock:
        with guard:
            return locks.setdefault(path, threading.Lock())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(64)

    def stop(*_):
        # Finish the operations in progress (their callers are waiting on them), then go.
        with guard:
            held = list(locks.values())
        for lock in held:
            lock.acquire()
        _cleanup(sock_path)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # lynkr run decides when we stop
    threading.Thread(target=_watch_parent, args=(parent, stop), daemon=True).start()
    channels = _Channels()
    threading.Thread(target=channels.serve, daemon=True, name="lynkr-db-channels").start()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_connection_loop, args=(conn, lock_for, channels), daemon=True).start()


def _connection_loop(conn: socket.socket, lock_for, channels: "_Channels") -> None:
    first = True
    with conn:
        while True:
            try:
                req = orjson.loads(_read_frame(conn))
            except (ConnectionError, OSError):
                return
            if first and req.get("op") == "db.channel":
                channels.add(conn.detach())          # served by the channels' thread from now on
                return
            first = False
            started = time.monotonic()
            if req["op"] in _unlocked:
                answer = _answer(req)
            else:
                with lock_for(req["path"]):
                    answer = _answer(req)
                    trim()     # a DuckDB batch's memory, back to the system before the next one
            took = time.monotonic() - started
            if took > SLOW_S:
                log.warning("db operation %s on %s took %.1f s", req["op"], req["path"], took)
            frame = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
            try:
                conn.sendall(_HEADER.pack(len(frame)) + frame)
            except OSError:
                return


class _Channels:
    """Every worker's channel, served by one thread over epoll. Of the frames found readable at
    once, those sent without waiting for an answer are applied first: each was written before its
    sender heard back about anything after it, so applying it first is an order that happened,
    and it is the order a client's next request, sent only after its answer, needs."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.r, self.w = socket.socketpair()       # wakes the thread when a channel is added
        self.r.setblocking(False)
        self.sel.register(self.r, selectors.EVENT_READ, None)
        self.added: list[socket.socket] = []
        self.lock = threading.Lock()

    def add(self, fd: int) -> None:
        conn = socket.socket(fileno=fd)
        conn.settimeout(10.0)        # a worker that stops reading its answers loses its channel
        with self.lock:
            self.added.append(conn)
        self.w.send(b"x")

    def serve(self) -> None:
        while True:
            batch = []
            for key, _ in self.sel.select():
                if key.data is None:
                    self._take_added()
                else:
                    self._read(key.fileobj, key.data, batch)
            batch.sort(key=lambda f: f[1].get("reply", True) is not False)   # stable: sent ones first
            for conn, req in batch:
                self._answer(conn, req)

    def _take_added(self) -> None:
        try:
            self.r.recv(4096)
        except BlockingIOError:
            pass
        with self.lock:
            added, self.added = self.added, []
        for conn in added:
            self.sel.register(conn, selectors.EVENT_READ, bytearray())

    def _read(self, conn: socket.socket, buf: bytearray, batch: list) -> None:
        try:
            data = conn.recv(1 << 20)
        except (BlockingIOError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        buf += data
        while len(buf) >= 4:
            (n,) = _HEADER.unpack_from(buf)
            if len(buf) < 4 + n:
                break
            batch.append((conn, orjson.loads(memoryview(buf)[4:4 + n])))
            del buf[:4 + n]

    def _answer(self, conn: socket.socket, req: dict) -> None:
        if conn.fileno() < 0:
            return        # dropped while this batch was being answered
        if req.get("op") not in _unlocked:
            answer = {"ok": False, "error": f"{req.get('op')} is not an operation a channel may run"}
        else:
            answer = _answer(req)
        if req.get("reply", True) is False:
            return
        frame = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
        try:
            conn.sendall(_HEADER.pack(len(frame)) + frame)
        except OSError:
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        try:
            self.sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()


def _answer(req: dict) -> dict:
    try:
        return {"ok": True, "result": _ops[req["op"]](req["path"], req.get("payload"))}
    except Exception as e:
        log.exception("db operation %s on %s failed", req.get("op"), req.get("path"))
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def _watch_parent(parent: int, stop) -> None:
    # Killed without a chance to stop us (SIGKILL), `lynkr run` would leave us behind.
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            stop()


def _cleanup(sock_path: str) -> None:
    try:
        os.unlink(sock_path)
        os.rmdir(os.path.dirname(sock_path))
    except OSError:
        pass


if __name__ == "__main__":
    from lynkr.kit.logfmt import configure
    configure("warning")        # the server's format (LYNKR_LOG_FORMAT, set by `lynkr run`)
    # Run as `python -m`, this file is `__main__`; the operations register with `lynkr.storage.db_service`.
    from lynkr.storage.db_service import serve as _serve
    _serve(sys.argv[1], int(sys.argv[2]))
