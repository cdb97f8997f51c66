"""`lynkr run`: start the server, optionally as several worker processes sharing the port."""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sys

from aiohttp import web

from lynkr.storage import db_service
from lynkr.teams import ledger
from lynkr.config.folder import load_front
from lynkr.storage.shared_state import AuthRefused, check_url_sync
from lynkr.errors import ConfigError
from lynkr.kit.heap import fix_mmap_threshold
from lynkr.engine.folder import engine_for
from lynkr.engine.runtime import Engine
from lynkr.telemetry.lake import check as lake_check
from lynkr.server.app import create_app
from lynkr.server.logs import RequestLog
from lynkr.server.connections import GuardedSite

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
                  watch: bool = True, log_level: str = "info", log_format: str = "text") -> int:
    global _log_format
    _log_format = log_format
    try:
        cfg = load_front(pipeline)       # a folder's front pipeline holds the server settings
    except ConfigError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 1
    problem = _unwritable_folder(cfg.data)
    if problem:
        print(f"✗ {problem}", file=sys.stderr)
        return 1
    if not _redis_usable(cfg):
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
        # A lake that cannot be used is said once, before any worker forks (each would say it again).
        problem = lake_check(cfg)
        if problem is not None:
            print(f"✗ {problem}", file=sys.stderr)
            return 1
        if workers <= 1:
            # The only process admitting requests: client-key counters live in it (no round trip).
            ledger.serve_here()
            return _serve(pipeline, host, port, watch, grace, worker=0, reuse_port=False, workers=1)
        return _serve_workers(cfg, pipeline, host, port, watch, grace, workers)
    finally:
        db_service.stop_service(db)


_OFF = ("off", "0", "false", "no")
_log_format = "text"


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
            code = _serve(pipeline, host, port, watch, grace, worker=i, reuse_port=True, workers=workers)
            os._exit(code)
        children.append(pid)
    try:
        code = _serve(pipeline, host, port, watch, grace, worker=0, reuse_port=True, workers=workers)
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


def _serve(pipeline: str, host: str, port: int, watch: bool, grace: float, *, worker: int, reuse_port: bool,
           workers: int = 1) -> int:
    _use_uvloop()
    engine = engine_for(pipeline, watch=watch, worker=worker)

    async def main() -> None:
        try:
            await engine.start()
        except ConfigError as e:
            print(f"✗ {e}", file=sys.stderr)
            raise SystemExit(1)
        except OSError as e:          # the telemetry or state folder cannot be created
            print(f"✗ {_os_error(e)}", file=sys.stderr)
            raise SystemExit(1)
        RequestLog().attach(engine)
        app = create_app(engine, manage_engine=False)
        runner = web.AppRunner(app, shutdown_timeout=grace, handle_signals=False, access_log=None)
        await runner.setup()
        site = GuardedSite(runner, host, port, reuse_port=reuse_port or None, backlog=1024)
        try:
            await site.start()
        except OSError as e:
            print(f"✗ {_listen_error(e, host, port)}", file=sys.stderr)
            await runner.cleanup()
            await engine.stop()
            raise SystemExit(1)
        _tune_gc()
        if worker == 0:
            _announce(engine, host, port, workers)
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
        who = f"worker {worker}: " if workers > 1 else ""
        in_flight = engine.current.in_flight if engine.current is not None else 0
        log.info("%sdraining %d request%s …", who, in_flight, "" if in_flight == 1 else "s")
        await runner.cleanup()
        await engine.stop()
        log.info("%sdone, %d telemetry rows written", who, getattr(engine.writer, "written", 0))

    try:
        asyncio.run(main())
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _announce(engine: Engine, host: str, port: int, workers: int) -> None:
    from lynkr.server.banner import first_screen, first_screen_data
    if _log_format == "json":
        log.info("serving", extra={"fields": {"event": "start", **first_screen_data(engine, host, port, workers)}})
    else:
        print(first_screen(engine, host, port, workers), file=sys.stderr, flush=True)


def _redis_usable(cfg) -> bool:
    """`state.redis` checked once before any worker starts: refused credentials are a clear error
    naming the file and line (and no worker loop); a Redis that does not answer is a warning."""
    conf = cfg.data.get("state")
    if not conf:
        return True
    try:
        warning = check_url_sync(conf["redis"], timeout=max(1.0, conf.get("timeout_s", 0.5)))
    except AuthRefused as e:
        err = cfg.error(str(e), ("state", "redis"), "put the right password in the URL: redis://:PASSWORD@host:port/0")
        print(f"✗ {err}", file=sys.stderr)
        return False
    if warning:
        print(f"! {cfg.file}: state.redis: {warning}", file=sys.stderr)
    return True


def _unwritable_folder(data: dict) -> str | None:
    """Why the state folder or the telemetry file's folder cannot be used, said before any
    process starts (a worker or the DuckDB writer would otherwise fail half-way, with a traceback)."""
    tele = data.get("telemetry") or {}
    folders = {"state_dir": data.get("state_dir") or ".lynkr"}
    if tele.get("enabled", True):
        folders["telemetry.path"] = os.path.dirname(tele.get("path") or ".lynkr/telemetry.duckdb") or "."
    for what, folder in folders.items():
        try:
            os.makedirs(folder, exist_ok=True)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "Permission denied", folder)
        except OSError as e:
            return f"{what}: {folder}: {_os_error(e)}"
    return None


def _listen_error(e: OSError, host: str, port: int) -> str:
    if e.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: the port is in use (another lynkr?); pass --port N or stop the other server"
    if e.errno == errno.EACCES:
        return (f"cannot listen on {host}:{port}: permission denied (ports below 1024 need root); "
                "pass --port N with N ≥ 1024")
    if e.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}:{port}: this machine has no address {host}; pass --host 127.0.0.1"
    return f"cannot listen on {host}:{port}: {e.strerror or e}"


def _os_error(e: OSError) -> str:
    where = f" {e.filename}" if e.filename else ""
    if isinstance(e, PermissionError):
        return (f"permission denied on{where}: choose a folder you can write (state_dir / LYNKR_STATE_DIR, "
                "telemetry.path / LYNKR_TELEMETRY)")
    return f"cannot use{where}: {e.strerror or e}"
