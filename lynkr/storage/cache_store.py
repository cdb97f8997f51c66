"""Cache persistence: a DuckDB file beside (never inside) the telemetry file, so a restart keeps
the cache. Default `<state_dir>/cache.duckdb`.

Writes go through one thread per file and are batched; each batch (and each read) is one
lynkr.storage.db_service operation, which attaches the file, works and detaches it (lynkr.storage.duckfile), so
several workers and a hot-reloaded pipeline can share it. Under `lynkr run` that happens in the
one writer process, and a server process never loads DuckDB. The event loop only enqueues. Reads
happen once, when a stage is built (already off the loop).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson

from lynkr.storage import db_service
from lynkr.storage.duckfile import attached, insert, release

__all__ = ["CacheStore", "open_store", "cache_path", "grouped", "INSERT", "DELETE"]

log = logging.getLogger("lynkr.cache")

ALIAS = "cache"     # the file, as lynkr.storage.duckfile attaches it: the SQL here names `cache.cache_entries`

_DDL = """
CREATE TABLE IF NOT EXISTS cache.cache_entries (
  id VARCHAR PRIMARY KEY,
  kind VARCHAR,          -- exact | semantic
  stage VARCHAR,         -- the stage id that stored it
  scope VARCHAR,         -- semantic: the partition; exact: the key
  text VARCHAR,          -- semantic: the question embedded
  vector FLOAT[],
  message VARCHAR,       -- the canonical response, JSON
  created DOUBLE,
  expires DOUBLE
)"""


class CacheStore:
    def __init__(self, path: str):
        self.path = str(path)
        db_service.call("cache.create", self.path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lynkr-cache-store")
        self._refs = 0
        self._lock = threading.Lock()
        self._last: Future | None = None
        self.errors = 0
        # Writes queue here and one job writes all that queued meanwhile in one open of the file:
        # an open+close per entry (~10 ms) fell behind at a hundred misses a second and the
        # backlog grew without bound (benchmarks/overhead.py, docs/performance.md).
        self._pending: list[tuple[str, list]] = []
        self._scheduled = False
        self._last_write = 0.0
        self._last_batch = 0
        self._wake = threading.Event()
        self._flushing = 0

    # -- lifecycle (shared between pipeline reloads) -------------------------------------------
    def acquire(self) -> "CacheStore":
        with self._lock:
            self._refs += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            last = self._refs <= 0
        if last:
            self.flush()
            self._pool.shutdown(wait=True)
            try:
                db_service.call("cache.release", self.path)     # the instance it was attached to
            except Exception:
                log.exception("cache store %s: release failed", self.path)
            with _stores_lock:
                if _stores.get(self.path) is self:
                    del _stores[self.path]

    def flush(self, timeout: float = 30.0) -> None:
        with self._lock:
            self._flushing += 1
        self._wake.set()                # a write waiting out WRITE_INTERVAL goes now
        try:
            fut = self._pool.submit(lambda: None)
            fut.result(timeout)
        finally:
            with self._lock:
                self._flushing -= 1
                if not self._flushing:
                    self._wake.clear()

    # -- reads --------------------------------------------------------------------------------
    def load(self, kind: str, stage: str, now: float | None = None) -> list[dict]:
        now = time.time() if now is None else now
        self.flush()
        rows = db_service.call("cache.load", self.path, [kind, stage, now])
        out = []
        for rid, scope, text, vector, message, created, expires in rows:
            try:
                msg = orjson.loads(message)
            except orjson.JSONDecodeError:
                continue
            out.append({"id": rid, "scope": scope, "text": text, "vector": vector, "message": msg,
                        "created": created, "expires": expires})
        return out

    # -- writes (queued; never block the caller) ------------------------------------------------
    def put(self, *, id: str, kind: str, stage: str, scope: str, message: dict | bytes, created: float,
            expires: float, text: str | None = None, vector=None) -> None:
        """`message`: the answer, or its JSON when the caller has it already."""
        vec = [float(v) for v in vector] if vector is not None else None
        raw = message if isinstance(message, bytes) else orjson.dumps(message)
        row = [id, kind, stage, scope, text, vec, raw.decode(), created, expires]
        self._submit(INSERT, row)

    def delete(self, ids: list[str]) -> None:
        if ids:
            self._submit(DELETE, [list(ids)])

    def purge_expired(self, now: float | None = None) -> None:
        self._submit("DELETE FROM cache.cache_entries WHERE expires <= ?", [time.time() if now is None else now])

    def _submit(self, sql: str, params: list) -> None:
        with self._lock:
            self._pending.append((sql, params))
            if self._scheduled:
                return
            self._scheduled = True
        self._pool.submit(self._write_pending)

    def _write_pending(self) -> None:
        # Under sustained load, at most one open of the file per WRITE_INTERVAL: a batch costs
        # ~100-200 ms (open, statements, the checkpoint on close) whether it holds 65 entries or
        # 500, and with a write queued behind every miss the thread reopened the file back to
        # back. Entries serve from memory meanwhile; the file is read at start-up only. Light
        # load (small batches) still writes at once, so a crash loses little
        # (tests/test_crash_safety.py); a flush (shutdown, reload) does not wait.
        if self._last_batch >= BUSY_BATCH:
            wait = self._last_write + WRITE_INTERVAL - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)
        with self._lock:
            batch, self._pending, self._scheduled = self._pending, [], False
        if batch:
            self._write(batch)
        self._last_write = time.monotonic()
        self._last_batch = len(batch)

    def _write(self, batch: list[tuple[str, list]]) -> None:
        try:
            self.errors += db_service.call("cache.write", self.path, batch)
        except Exception:
            self.errors += len(batch)
            log.exception("cache store %s: %d writes lost", self.path, len(batch))


# -- the file's operations (lynkr.storage.db_service: in the writer process, or in this one) -------------

@db_service.operation("cache.create")
def _create(path: str, _payload=None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with attached(path, ALIAS) as con:
        con.execute(_DDL)


@db_service.operation("cache.load")
def _load(path: str, args: list) -> list:
    with attached(path, ALIAS) as con:
        return con.execute(
            "SELECT id, scope, text, vector, message, created, expires FROM cache.cache_entries "
            "WHERE kind = ? AND stage = ? AND expires > ? ORDER BY created", args).fetchall()


@db_service.operation("cache.release")
def _release(path: str, _payload=None) -> None:
    release(path)


@db_service.operation("cache.write")
def _write_batch(path: str, batch: list) -> int:
    """The statements in one transaction; when that fails, one by one. Returns the failures."""
    with attached(path, ALIAS) as con:
        try:   # in order (a delete may follow the insert it undoes), one commit for the batch
            con.execute("BEGIN")
            for sql, params in grouped(batch):
                _execute(con, sql, params)
            con.execute("COMMIT")
            return 0
        except Exception:
            try:
                con.execute("ROLLBACK")
            except Exception:
                pass
        errors = 0
        for sql, params in batch:     # one bad row costs that row, not the batch
            try:
                _execute(con, sql, params)
            except Exception:
                errors += 1
                log.exception("cache store %s: write failed", path)
        return errors


def _execute(con, sql: str, params: list) -> None:
    if sql == INSERT_ROWS:
        insert(con, "cache.cache_entries", COLUMNS, params, verb="INSERT OR REPLACE")
    elif sql == INSERT:
        insert(con, "cache.cache_entries", COLUMNS, [[v] for v in params], verb="INSERT OR REPLACE")
    else:
        con.execute(sql, params)


WRITE_INTERVAL = 5.0     # seconds between two writes of queued entries under load
BUSY_BATCH = 16          # entries queued during one write that mean "under load"

COLUMNS = ["id", "kind", "stage", "scope", "text", "vector", "message", "created", "expires"]
# What a worker queues: a row to insert (or replace), ids to delete, or a statement of its own.
INSERT = "insert"
INSERT_ROWS = "insert rows"         # rows as columns (lynkr.storage.duckfile.insert), made by grouped
DELETE = "DELETE FROM cache.cache_entries WHERE id IN (SELECT unnest(?))"


def grouped(batch: list[tuple[str, list]]):
    """The batch as few statements: each run of inserts and deletes by id becomes one DELETE and
    one insert, with each id's last operation winning (ids are independent, so
    this is the state the statements in order would leave). Interleaved, a full exact cache's
    insert+eviction pair per miss cost ~7 ms a request in DuckDB; grouped, ~0.3 ms. Any other
    statement (purge) keeps its place between runs."""
    last: dict = {}             # id -> row to insert, or None to delete

    def flush():
        gone = [i for i, row in last.items() if row is None]
        rows = [row for row in last.values() if row is not None]
        last.clear()
        if gone:
            yield DELETE, [gone]
        if rows:
            yield INSERT_ROWS, [list(c) for c in zip(*rows)]

    for sql, params in batch:
        if sql == INSERT:
            last.pop(params[0], None)
            last[params[0]] = params
        elif sql == DELETE:
            for i in params[0]:
                last.pop(i, None)
                last[i] = None
        else:
            yield from flush()
            yield sql, params
    yield from flush()


_stores: dict[str, CacheStore] = {}
_stores_lock = threading.Lock()


def open_store(path: str) -> CacheStore:
    """The process-wide store for this file (exact and semantic stages, old and new pipeline
    during a reload, all share one writer thread). Call `release()` when done."""
    key = str(Path(path).resolve())
    with _stores_lock:
        st = _stores.get(key)
        if st is None:
            st = _stores[key] = CacheStore(key)
        return st.acquire()


def cache_path(ctx, options: dict) -> str:
    """The stage's cache file: `with: {path}` or <state_dir>/cache.duckdb; never the telemetry file
    (DuckDB lets one writer hold a file, and the telemetry writer opens its own per batch)."""
    import os

    path = options.get("path") or os.path.join(ctx.state_dir, "cache.duckdb")
    tel = ((ctx.config.get("telemetry") or {}).get("path")) or ".lynkr/telemetry.duckdb"
    if os.path.abspath(tel) == os.path.abspath(path):
        raise ctx.error(f"the cache file {path} is the telemetry file; give the cache its own path", "path")
    return path
