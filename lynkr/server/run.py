"""`lynkr run`: start the server, optionally as several worker processes sharing the port."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from lynkr.storage import db_service
from lynkr.config import load_config
from lynkr.errors import ConfigError
from lynkr.kit.heap import fix_mmap_threshold
from lynkr.engine.runtime import Engine
from lynkr.server.app import create_app

__all__ = ["serve_forever"]

log = logging.getLogger("lynkr.server")


# In the parent of `--workers N`: the workers' pids, to forward signals to.
_workers: list[int] = []
_signalled = False
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve_forever(pipeline: str, *, port: int | None = None, host: str | None = None, workers: int = 1,
                  watch: bool = True, log_level: str = "info") -> int:
    try:
        cfg = load_config(pipeline)
    except ConfigError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 1
    server = cfg.data.get("server") or {}
    host = host or server.get("host") or "127.0.0.1"
    port = port if port is not None else server.get("port", 8081)
    grace = float(server.get("shutdown_grace_s", 30))
    fix_mmap_threshold()                 # before anything big is allocated; the workers inherit it
    # One process writes the DuckDB files (telemetry, cache) for every worker: a server process
    # then never loads DuckDB (lynkr.storage.db_service). It stops after the last worker has flushed.
    db = db_service.start_service() if os.environ.get("LYNKR_DB_SERVICE", "on").lower() not in _OFF else None
    try:
        if workers <= 1:
            return _serve(pipeline, host, port, watch, grace, worker=0, reuse_port=False)
        return _serve_workers(cfg, pipeline, host, port, watch, grace, workers)
    finally:
        db_service.stop_service(db)


_OFF = ("off", "0", "false", "no")


def _serve_workers(cfg, pipeline: str, host: str, port: int, watch: bool, grace: float, workers: int) -> int:
    # Workers share the port through SO_REUSEPORT; the kernel spreads connections. Telemetry
    # stays one file: each writer holds it only while writing a batch.
    children = _workers
    # The embedding model (~100 MB) is loaded before forking, so the workers share its pages.
    from lynkr.kit.embed import preload_for
    preload_for(cfg.data)
    # Signals wait (blocked, not lost) until each process has its handlers: a SIGTERM that lands
    # while a worker is still loading would otherwise kill it outright instead of draining it.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    for i in range(1, workers):
        pid = os.fork()
        if pid == 0:
            # A worker hears signals only through the parent (which forwards each one), so a
            # Ctrl-C to the terminal's process group is not counted twice as "exit at once".
            os.setpgid(0, 0)
            children.clear()
            os.environ["LYNKR_WORKER"] = str(i)
            code = _serve(pipeline, host, port, watch, grace, worker=i, reuse_port=True)
            os._exit(code)
        children.append(pid)
    try:
        code = _serve(pipeline, host, port, watch, grace, worker=0, reuse_port=True)
    finally:
        # The parent's loop is gone while it waits for draining workers: a signal now still has to
        # reach them, and a second one still has to end everything at once.
        signal.signal(signal.SIGTERM, _while_waiting)
        signal.signal(signal.SIGINT, _while_waiting)
        for pid in children if not _signalled else ():   # already told to drain, alongside the parent
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    return code


def _while_waiting(sig, _frame) -> None:
    global _signalled
    for pid in _workers:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    if _signalled:
        os._exit(130)
    _signalled = True


def _tune_gc() -> None:
    """Keep the cyclic GC off what lives for the whole run. Measured on a small passthrough
    request under load: ~100 µs per request went to collections (a full one scans every module,
    tiktoken's 100k-entry rank table and the pipeline: ~85 ms each), against ~8 µs after this.
    Request garbage is mostly freed by reference counting; what forms cycles (exceptions,
    generators) is still collected, only less often."""
    import gc
    gc.collect()
    gc.freeze()                          # everything loaded so far: never scanned again
    gc.set_threshold(20_000, 50, 100)    # young collections every 20k allocations instead of 700


def _serve(pipeline: str, host: str, port: int, watch: bool, grace: float, *, worker: int, reuse_port: bool) -> int:
    _use_uvloop()
    engine = Engine(pipeline, watch=watch, worker=worker)

    async def main() -> None:
        try:
            await engine.start()
        except ConfigError as e:
            print(f"✗ {e}", file=sys.stderr)
            raise SystemExit(1)
        app = create_app(engine, manage_engine=False)
        runner = web.AppRunner(app, shutdown_timeout=grace, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
        await site.start()
        _tune_gc()
        if worker == 0:
            print(f"lynkr: serving pipeline '{engine.current.name}' ({engine.current.hash}) on http://{host}:{port}",
                  flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = {"n": 0}

        def on_signal(sig):
            global _signalled
            _signalled = True
            signals["n"] += 1
            for pid in _workers:   # workers drain (or exit at once) together with the parent
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if signals["n"] > 1:
                os._exit(130)      # a second signal exits at once
            stop.set()

        for sig in _SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        await stop.wait()
        # Stop accepting, let in-flight requests and streams finish up to the grace period,
        # then flush telemetry and close stages.
        await runner.cleanup()
        await engine.stop()

    try:
        asyncio.run(main())
    except SystemExit as e:
        return int(e.code or 0)
    return 0
