"""Shared pieces of the reliability tests: an upstream that holds requests until released, an
in-process Lynkr whose app the test can inspect, leak counters, and a `lynkr run` subprocess."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.conftest import ROOT, free_port, start_app
from tests.helpers.anthropic_upstream import AnthropicUpstream

BODY = {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
OPENAI_BODY = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


class GatedUpstream(AnthropicUpstream):
    """Holds every request until `release()`; `arrived` counts requests waiting at the gate."""

    def __init__(self, script=None):
        super().__init__(script)
        self.gate = asyncio.Event()
        self.arrived = 0

    async def messages(self, request):
        self.arrived += 1
        await self.gate.wait()
        return await super().messages(request)

    def release(self) -> None:
        self.gate.set()

    async def wait_arrived(self, n: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while self.arrived < n:
                await asyncio.sleep(0.01)


async def start_upstream(up):
    """Serve a test upstream in this process; its cleanup waits at most 1 s for stuck handlers."""
    from aiohttp import web

    runner = web.AppRunner(up.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    up.url = f"http://127.0.0.1:{port}"
    return runner


@contextlib.asynccontextmanager
async def lynkr_app(pipeline_path, tmp_path, **engine_kw):
    """An in-process Lynkr (engine + app + server), yielding (app, base_url)."""
    from lynkr.engine.runtime import Engine
    from lynkr.server.app import create_app

    engine = Engine(str(pipeline_path), watch=False, telemetry_path=str(tmp_path / "telemetry.duckdb"), **engine_kw)
    await engine.start()
    app = create_app(engine, manage_engine=False)
    runner, url = await start_app(app)
    try:
        yield app, url
    finally:
        await runner.cleanup()
        await engine.stop()


async def post(url: str, path: str = "/v1/messages", body: dict | None = None, headers: dict | None = None,
               data: bytes | None = None):
    """(status, headers, body bytes) on a fresh connection that is closed afterwards."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        kw = {"data": data} if data is not None else {"json": BODY if body is None else body}
        async with s.post(url + path, headers=headers or {}, **kw) as r:
            return r.status, r.headers, await r.read()


# -- leaks ------------------------------------------------------------------------------------------

def open_sockets() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def live_tasks() -> int:
    return len([t for t in asyncio.all_tasks() if not t.done()])


async def settle(baseline_sockets: int, baseline_tasks: int, timeout: float = 5.0) -> tuple[int, int]:
    """Counts once they are back to the baseline, or whatever they are when `timeout` is up (closing a
    socket and ending a task take a few loop turns)."""
    deadline = time.monotonic() + timeout
    while True:
        s, t = open_sockets(), live_tasks()
        if (s <= baseline_sockets and t <= baseline_tasks) or time.monotonic() > deadline:
            return s, t
        await asyncio.sleep(0.02)


# -- a real `lynkr run` ----------------------------------------------------------------------------

class LynkrProcess:
    def __init__(self, pipeline: Path, port: int | None = None, cwd: Path | None = None, extra_env: dict | None = None,
                 args: tuple[str, ...] = (), reload: bool = False):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), **(extra_env or {})}
        # Output to a file, not a pipe: a chatty server must never block on a full pipe buffer.
        self.log_path = Path(cwd or pipeline.parent) / f"lynkr-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lynkr.cli", "run", str(pipeline), "--port", str(self.port),
             *(() if reload else ("--no-reload",)), *args],
            cwd=str(cwd or pipeline.parent), env=env, stdout=self._log, stderr=subprocess.STDOUT)

    async def ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"lynkr exited {self.proc.returncode}: {self.output()}")
                try:
                    async with s.get(self.url + "/health/ready") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"lynkr did not become ready: {self.output()}")

    def workers(self) -> list[int]:
        """Pids of the worker processes `--workers N` forked (Linux /proc)."""
        pids = []
        for task in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                pids += [int(p) for p in open(f"/proc/{self.proc.pid}/task/{task}/children").read().split()]
            except OSError:
                pass
        return pids

    def signal(self, sig=signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError("lynkr did not exit")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._log.close()


def telemetry_rows(path, table: str = "requests", where: str = "") -> int:
    from lynkr.storage.duckfile import connect_with_retry

    con = connect_with_retry(str(path), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table} {where}").fetchone()[0]
    finally:
        con.close()


# -- a Lynkr in a thread, for synchronous drivers (hypothesis) ---------------------------------------

class ThreadedLynkr:
    """An upstream double and a Lynkr serving `pipeline_text` (with `{upstream}` filled in) on a loop
    in a background thread; `url` is set once both listen."""

    def __init__(self, pipeline_text: str, tmp_path: Path, upstream=None):
        import threading

        self.tmp_path = tmp_path
        self.pipeline_text = pipeline_text
        self.upstream = upstream or AnthropicUpstream()
        self.url: str | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.app = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="lynkr-test-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:   # surfaced by start()
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        up_runner = await start_upstream(self.upstream)
        path = self.tmp_path / "pipeline.yaml"
        path.write_text(self.pipeline_text.format(upstream=self.upstream.url))
        try:
            async with lynkr_app(path, self.tmp_path) as (app, url):
                self.app, self.url = app, url
                self._ready.set()
                await self._stop.wait()
        finally:
            await up_runner.cleanup()

    def start(self) -> "ThreadedLynkr":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
