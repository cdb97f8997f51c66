"""A real `redis-server` for tests: started on a free port in a temp folder, no persistence, stopped
after. Reusable by any test that needs Redis (the shared-state tests, the fleet test):

    with RedisServer() as r:                 # or RedisServer(password="s3cret")
        url = r.url                          # redis://127.0.0.1:PORT/0 (with the password when set)
        r.stop(); r.start()                  # down and up again on the same port (reconnect tests)
        r.pause(); r.resume()                # SIGSTOP / SIGCONT: a Redis that stops answering

    def test_x(redis_server): ...            # the pytest fixture: one server per test

Under CI=true a missing redis-server fails the test (tests/conftest.py turns the skip into a failure);
.ci/setup.d/30-redis.sh installs Debian's package.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

__all__ = ["RedisServer", "redis_server", "redis_binary", "need_redis"]


def redis_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None)


def need_redis() -> str:
    """The redis-server binary, or a skip (a failure under CI=true) naming the installer."""
    found = redis_binary()
    if found is None:
        pytest.skip("redis-server is not installed (bash .ci/setup.d/30-redis.sh installs Debian's package)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process. `start()` again after `stop()` reuses the port and the password."""

    def __init__(self, *, password: str | None = None, port: int | None = None, binary: str | None = None):
        self.binary = binary or need_redis()
        self.password = password
        self.port = port or _free_port()
        self.dir = tempfile.mkdtemp(prefix="lynkr-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def url_with_password(self, password: str) -> str:
        return f"redis://:{password}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> "RedisServer":
        if self.proc is not None and self.proc.poll() is None:
            return self
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.proc.stderr.read().decode()[-1000:]}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"redis-server did not answer on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        """Stop it (SIGTERM; SIGKILL if it lingers). The port stays this server's for `start()`."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(signal.SIGCONT)     # a paused server cannot act on SIGTERM
            proc.terminate()
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self) -> "RedisServer":
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung or very slow Redis)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def client(self):
        """A synchronous redis-py client to look inside (keys, streams) from a test."""
        import redis
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def redis_server():
    """A fresh redis-server on a free port for one test (no password)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()
