"""The running engine: the active pipeline, hot reload, and the telemetry writer.

A reload builds the new pipeline beside the running one (in a thread: stages may load models)
and swaps it in with one assignment, so a request sees either the old or the new pipeline,
never a mix. Requests in flight keep the pipeline they started on; the old one is closed when
its last request finishes. An invalid file is logged, kept in `last_error`, and the old
pipeline keeps serving.

The watcher decides by what the pipeline file *resolves to*, not by which path an event names:
editors replace a file by rename, and a Kubernetes ConfigMap volume never touches the visible
file at all (`pipeline.yaml -> ..data/pipeline.yaml`; an update renames a new `..data` symlink
into place). Any event in the folder, and a look every WATCH_RECHECK_S without one (an event the
watcher missed, or came before it was listening), compares each file's content (a digest, read
through symlinks) with what the watcher saw last, and reloads the files that differ: a kubelet
update rewrites every file of the ConfigMap, and only the changed pipelines are rebuilt.
"""
from __future__ import annotations

import asyncio
import hashlib
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
from lynkr.providers.shared_breakers import share_breakers
from lynkr.storage.shared_state import AuthRefused, SharedState
from lynkr.telemetry import NullWriter, TelemetryWriter
from lynkr.telemetry.lake import LakeStartError
from lynkr.engine.pipeline import Pipeline, build_pipeline

__all__ = ["Engine", "AFTER_HOOKS_GRACE_S", "WATCH_RECHECK_S"]

log = logging.getLogger("lynkr.engine")

# How long `stop` waits for `after` hooks (cache stores) still running when the server shuts down.
AFTER_HOOKS_GRACE_S = 10
# Without any file event, the watcher still compares the files this often.
WATCH_RECHECK_S = 5


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
        self.tracing = None            # lynkr.telemetry.tracing.Tracing when `telemetry.otlp` is set
        self._telemetry_path = telemetry_path
        self._watch_task: asyncio.Task | None = None
        self._reload_lock = asyncio.Lock()
        self._seen_files: dict[str, bytes | None] = {}
        self._after_tasks: set[asyncio.Task] = set()
        self.listeners: list = []      # callables(event: str, pipeline) — metrics, logs
        self.on_finish: list = []      # callables(x) per finished request, on the loop: cheap (metrics counters)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        # Noted before reading: an edit landing during the build is then seen as a change.
        self._seen_files = self._identities()
        await self._share_state(await asyncio.get_running_loop().run_in_executor(None, self._state_config))
        self.current = await self._build()
        tcfg = self.current.config.get("telemetry") or {}
        if tcfg.get("enabled", True):
            path = self._telemetry_path or tcfg.get("path") or ".lynkr/telemetry.duckdb"
            try:
                self.writer = TelemetryWriter(path, flush_interval=tcfg.get("flush_interval_s", 2.0),
                                              batch_size=tcfg.get("batch_size", 5000),
                                              content=bool(tcfg.get("content", False)), worker=self.worker,
                                              lake=tcfg.get("lake"))
            except LakeStartError as e:
                raise self.current.cfg.error(str(e), ("telemetry", "lake", e.field)) from None
        if tcfg.get("otlp"):
            # Imported here: without `otlp`, nothing of OpenTelemetry is loaded or run.
            from lynkr.telemetry.tracing import start_tracing
            self.tracing = start_tracing(self.current.cfg, worker=self.worker)
            self.on_finish.append(self.tracing.finish)
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
            await asyncio.wait(list(self._after_tasks), timeout=AFTER_HOOKS_GRACE_S)
        if self.current is not None:
            await self.current.retire()
        state = self.shared.pop("state", None)
        if state is not None:
            await state.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.writer.close)
        if self.tracing is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.tracing.close)

    # -- reload ------------------------------------------------------------------------------
    async def _build(self) -> Pipeline:
        loop = asyncio.get_running_loop()

        def build():
            cfg = load_config(self.path, self.environ)
            check_key_pipelines(cfg, {cfg.name: cfg})     # one file serves one pipeline: keys may name only it
            return build_pipeline(cfg, shared=self.shared)

        return await loop.run_in_executor(None, build)

    def _state_config(self):
        """The config whose `state:` the engine shares (a folder's: its front pipeline's)."""
        return load_config(self.path, self.environ)

    async def _share_state(self, cfg) -> None:
        """`state: {redis: URL}`: the process's SharedState, made before the first build (stages find
        it in `ctx.shared["state"]`). Refused credentials stop the start with the file and line; a
        Redis that does not answer starts the process degraded. A reload keeps it (a change of
        `state.redis` needs a restart)."""
        conf = cfg.data.get("state")
        if conf is None or self.shared.get("state") is not None:
            return
        state = SharedState.from_config(conf)
        try:
            await state.check()
        except AuthRefused as e:
            await state.aclose()
            raise cfg.error(str(e), ("state", "redis"),
                            "put the right password in the URL: redis://:PASSWORD@host:port/0") from None
        self.shared["state"] = state
        share_breakers(self.shared, state)

    async def reload(self, changed: set[str] | None = None) -> bool:
        """Build the pipeline anew and swap it in; False, the running one kept, when it fails.
        `changed`: the files that changed, for engines serving several (one file: rebuilt anyway)."""
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

    def watched_folders(self) -> list[str]:
        """Where a change to the watched files shows up as an event (not their subfolders: a
        pipeline beside a checkout would otherwise put a watch on every folder below it)."""
        return sorted({os.path.dirname(os.path.abspath(f)) for f in self.watched_files()})

    def _identities(self) -> dict[str, bytes | None]:
        """A digest of each watched file's content (through symlinks); None when it cannot be read."""
        out: dict[str, bytes | None] = {}
        for f in self.watched_files():
            try:
                with open(f, "rb") as fh:
                    out[f] = hashlib.blake2b(fh.read(), digest_size=16).digest()
            except OSError:
                out[f] = None
        return out

    async def _watch_loop(self) -> None:
        import watchfiles

        # No filter: a ConfigMap's `..data` entries are exactly the events that matter.
        async for _changes in watchfiles.awatch(*self.watched_folders(), watch_filter=None, recursive=False,
                                                debounce=200, step=50, rust_timeout=int(WATCH_RECHECK_S * 1000),
                                                yield_on_timeout=True):
            now = self._identities()
            changed = {f for f in now.keys() | self._seen_files.keys() if now.get(f) != self._seen_files.get(f)}
            if changed:
                self._seen_files = now
                await self.reload(changed)

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
        if self.tracing is not None:
            self.tracing.start(x)
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
