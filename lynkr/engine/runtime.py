"""The running engine: the active pipeline, hot reload, and the telemetry writer.

A reload builds the new pipeline beside the running one (in a thread: stages may load models)
and swaps it in with one assignment, so a request sees either the old or the new pipeline,
never a mix. Requests in flight keep the pipeline they started on; the old one is closed when
its last request finishes. An invalid file is logged, kept in `last_error`, and the old
pipeline keeps serving.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Mapping

from lynkr.body import Body
from lynkr.config import load_config
from lynkr.config.folder import check_key_pipelines
from lynkr.errors import ConfigError
from lynkr.exchange import Exchange
from lynkr.telemetry import NullWriter, TelemetryWriter
from lynkr.engine.pipeline import Pipeline, build_pipeline

__all__ = ["Engine"]

log = logging.getLogger("lynkr.engine")


class Engine:
    def __init__(self, path: str | Path, *, environ: Mapping[str, str] | None = None, watch: bool = True,
                 telemetry_path: str | None = None, worker: int = 0):
        self.path = str(path)
        self.environ = environ
        self.watch = watch
        self.worker = worker
        self.current: Pipeline | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.reloads = 0
        self.reload_failures = 0
        self.shared: dict = {}
        self.writer = NullWriter()
        self._telemetry_path = telemetry_path
        self._watch_task: asyncio.Task | None = None
        self._reload_lock = asyncio.Lock()
        self._after_tasks: set[asyncio.Task] = set()
        self.listeners: list = []      # callables(event: str, pipeline) — metrics, logs
        self.on_finish: list = []      # callables(x) per finished request, on the loop: cheap (metrics counters)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.current = await self._build()
        tcfg = self.current.config.get("telemetry") or {}
        if tcfg.get("enabled", True):
            path = self._telemetry_path or tcfg.get("path") or ".lynkr/telemetry.duckdb"
            self.writer = TelemetryWriter(path, flush_interval=tcfg.get("flush_interval_s", 2.0),
                                          batch_size=tcfg.get("batch_size", 5000),
                                          content=bool(tcfg.get("content", False)), worker=self.worker)
        if self.watch:
            self._watch_task = asyncio.create_task(self._watch_loop())

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except (asyncio.CancelledError, Exception):
                pass
        if self._after_tasks:
            await asyncio.wait(list(self._after_tasks), timeout=10)
        if self.current is not None:
            await self.current.retire()
        await asyncio.get_running_loop().run_in_executor(None, self.writer.close)

    # -- reload ------------------------------------------------------------------------------
    async def _build(self) -> Pipeline:
        loop = asyncio.get_running_loop()

        def build():
            cfg = load_config(self.path, self.environ)
            check_key_pipelines(cfg, {cfg.name: cfg})     # one file serves one pipeline: keys may name only it
            return build_pipeline(cfg, shared=self.shared)

        return await loop.run_in_executor(None, build)

    async def reload(self) -> bool:
        async with self._reload_lock:
            try:
                new = await self._build()
            except ConfigError as e:
                self._fail(str(e))
                return False
            except Exception as e:  # a stage's constructor may raise anything
                self._fail(f"{self.path}: {type(e).__name__}: {e}")
                return False
            old, self.current = self.current, new
            self.reloads += 1
            self.last_error = None
            log.info("pipeline %s reloaded (hash %s)", new.name, new.hash)
            for cb in self.listeners:
                cb("reload", new)
            if old is not None:
                await old.retire()
            return True

    def _fail(self, message: str) -> None:
        self.reload_failures += 1
        self.last_error = message
        self.last_error_at = time.time()
        log.error("pipeline reload failed, keeping the running one: %s", message)
        for cb in self.listeners:
            cb("reload_failed", self.current)

    def watched_files(self) -> list[str]:
        return [self.path]

    async def _watch_loop(self) -> None:
        import watchfiles

        # Watch the folder (editors replace files by rename) and filter to our files.
        targets = {os.path.abspath(f) for f in self.watched_files()}
        folders = sorted({os.path.dirname(f) for f in targets})
        async for changes in watchfiles.awatch(*folders, debounce=200, step=50):
            if any(os.path.abspath(p) in targets for _c, p in changes):
                await self.reload()
                targets = {os.path.abspath(f) for f in self.watched_files()}

    def serving(self) -> list[Pipeline]:
        """Every pipeline this engine serves (one; lynkr.engine.folder's, one per file)."""
        return [self.current] if self.current is not None else []

    def named(self, name: str) -> Pipeline | None:
        """The served pipeline of that name (`/p/NAME/…`, `keys.NAME.pipeline`), or None."""
        return self.current if self.current is not None and self.current.name == name else None

    # -- requests ----------------------------------------------------------------------------
    @property
    def finishing(self) -> int:
        """Finished requests whose `after` hooks (a cache store, say) are still running."""
        return len(self._after_tasks)

    def exchange(self, client: str, request: dict, *, original, raw: bytes | None = None, **kw) -> Exchange:
        """A new Exchange for a request the server read. Its Body (lynkr.body) reads the client's
        bytes `raw` for the parts' JSON when the protocol's parts are the canonical request's own
        (`raw` None otherwise), and notes the telemetry's token plan when the upstream body is made."""
        x = Exchange.new(client, request, original=original, body=Body(self.writer.plan_tokens), **kw)
        if raw is not None:
            x.body.read(raw, original, x.session)
        return x

    def finish_later(self, x: Exchange) -> None:
        """Run `after` hooks and record telemetry once the response is out, off the critical path."""
        p = x.pipeline
        if p is not None and not p._retired and not any(step.has_after for step, _ev in x.ran):
            # Nothing to await (passthrough, most misses): no task per request (~3% of a small one).
            p.in_flight -= 1
            self._record(x)
            return
        t = asyncio.get_running_loop().create_task(self._finish(x))
        self._after_tasks.add(t)
        t.add_done_callback(self._after_tasks.discard)

    async def _finish(self, x: Exchange) -> None:
        try:
            if x.pipeline is not None:
                await x.pipeline.finish(x)
        except Exception:
            log.exception("after hooks failed for %s", x.id)
        self._record(x)

    def _record(self, x: Exchange) -> None:
        for cb in self.on_finish:
            try:
                cb(x)
            except Exception:
                log.exception("on_finish hook failed for %s", x.id)
        self.writer.submit(x)
