"""Where memories are kept: per scope in memory (a matrix of vectors for ranking) and in a DuckDB
file, `<state_dir>/memory.duckdb` by default, so a restart keeps them.

The file is worked on the way every Lynkr DuckDB file is (lynkr/storage/db_service.py): each batch
of writes is one operation, run by the one writer process under `lynkr run` or in this process
otherwise, attaching the file for the batch only, so `lynkr memory …` can open it in between.
Writes queue on one thread and never block the request. When someone else changed the file
(`lynkr memory forget`, the dashboard, another worker), `maybe_reload` notices the file's
modification time and loads it again, so a forgotten memory is not injected any more.

Adding decides novelty (the "surprise" test): a candidate whose best cosine to the project's
memories is >= `duplicate` is the same memory (touched, not stored); one >= 1 - surprise
threshold is about the same thing, and replaces the old memory only when its specifics (numbers,
names, paths) differ — "the API runs on port 8081" updates "the API runs on port 8080"; anything
else is novel and stored. Bounds: characters per memory, memories per project (the least
important and least recently used go first), memories in all, and a TTL since last use.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lynkr.memory.rank import rank, words
from lynkr.memory.scope import Scope
from lynkr.storage import db_service
from lynkr.storage.duckfile import attached, insert, release, transaction

__all__ = ["Memory", "MemoryStore", "open_memory", "memory_path", "memory_id", "file_op"]

log = logging.getLogger("lynkr.memory")

ALIAS = "mem"
COLUMNS = ["id", "tenant", "project", "text", "kind", "source", "importance", "vector", "created", "accessed",
           "expires"]
_DDL = """
CREATE TABLE IF NOT EXISTS mem.memories (
  id VARCHAR PRIMARY KEY, tenant VARCHAR, project VARCHAR, text VARCHAR, kind VARCHAR,
  source VARCHAR,        -- user | answer | tool
  importance DOUBLE, vector FLOAT[], created DOUBLE, accessed DOUBLE, expires DOUBLE
)"""
_SPECIFIC = re.compile(r"\d+(?:\.\d+)*|[A-Za-z_][\w.-]*[/._-][\w./-]+|\b[A-Z][\w-]+")


@dataclass(slots=True)
class Memory:
    id: str
    tenant: str
    project: str
    text: str
    kind: str
    source: str
    importance: float
    created: float
    accessed: float
    expires: float

    def row(self, vector) -> list:
        return [self.id, self.tenant, self.project, self.text, self.kind, self.source, self.importance,
                [float(v) for v in vector], self.created, self.accessed, self.expires]

    def public(self) -> dict:
        """What `lynkr memory` and the dashboard show."""
        return {"id": self.id, "project": self.project, "tenant": self.tenant, "kind": self.kind,
                "source": self.source, "importance": round(self.importance, 2), "text": self.text,
                "created": self.created, "last_used": self.accessed}


def memory_id(scope: Scope, text: str) -> str:
    """The same text in the same scope is the same memory; in another scope it is another one."""
    h = hashlib.sha256("\x1e".join((scope.tenant, scope.project, text)).encode("utf-8", "surrogatepass"))
    return "m_" + h.hexdigest()[:16]


class _Project:
    """One scope's memories and the arrays ranking reads."""

    __slots__ = ("memories", "matrix", "words", "importance", "used")

    def __init__(self, dim: int):
        self.memories: list[Memory] = []
        self.matrix = np.zeros((0, dim), dtype=np.float32)
        self.words: list[frozenset] = []
        self.importance = np.zeros(0, dtype=np.float32)
        self.used = np.zeros(0, dtype=np.float64)

    def append(self, m: Memory, vector) -> None:
        self.memories.append(m)
        self.matrix = np.vstack([self.matrix, np.asarray(vector, dtype=np.float32)[None, :]])
        self.words.append(words(m.text))
        self.importance = np.append(self.importance, np.float32(m.importance))
        self.used = np.append(self.used, m.accessed)

    def drop(self, rows: list[int]) -> list[Memory]:
        keep = [i for i in range(len(self.memories)) if i not in set(rows)]
        gone = [self.memories[i] for i in rows]
        self.memories = [self.memories[i] for i in keep]
        self.matrix = self.matrix[keep]
        self.words = [self.words[i] for i in keep]
        self.importance = self.importance[keep]
        self.used = self.used[keep]
        return gone

    def touch(self, row: int, now: float, ttl: float) -> None:
        m = self.memories[row]
        m.accessed = now
        m.expires = now + ttl
        self.used[row] = now

    def row_of(self, mid: str) -> int | None:
        return next((i for i, m in enumerate(self.memories) if m.id == mid), None)


class MemoryStore:
    """Scope -> memories; persistent when given a path. Thread-safe (one lock)."""

    def __init__(self, dim: int, path: str | None = None, *, ttl: float = 90 * 86400, max_per_project: int = 1000,
                 max_memories: int = 50_000, duplicate: float = 0.92, surprise: float = 0.3):
        self.dim = dim
        self.path = path
        self.ttl = ttl
        self.max_per_project = max_per_project
        self.max_memories = max_memories
        self.duplicate = duplicate
        self.surprise = surprise
        self._projects: dict[Scope, _Project] = {}
        self._lock = threading.RLock()
        self._count = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lynkr-memory") if path else None
        self._seen_mtime = None
        self._checked = 0.0
        self.errors = 0
        if path:
            db_service.call("memory.create", path)
            self._load()

    # -- reading ----------------------------------------------------------------------------------
    def search(self, scope: Scope, vector, text: str, *, limit: int, min_relevance: float, spread: float = 0.0,
               now: float | None = None) -> list[tuple[float, Memory]]:
        """The relevant memories of `scope`, best first, as (relevance, memory) (rank.rank says which);
        each found one counts as used (recency, TTL)."""
        now = time.time() if now is None else now
        with self._lock:
            p = self._projects.get(scope)
            if p is None:
                return []
            self._expire(scope, p, now)
            found = rank(p.matrix, p.words, p.importance, p.used, np.asarray(vector, dtype=np.float32), words(text),
                         now=now, limit=limit, min_relevance=min_relevance, spread=spread)
            for _score, _rel, row in found:
                p.touch(row, now, self.ttl)
            return [(rel, p.memories[row]) for _score, rel, row in found]

    def list(self, scope: Scope | None = None) -> list[Memory]:
        with self._lock:
            projects = [self._projects.get(scope)] if scope is not None else list(self._projects.values())
            return [m for p in projects if p is not None for m in p.memories]

    def count(self, scope: Scope) -> int:
        p = self._projects.get(scope)
        return len(p.memories) if p is not None else 0

    def __len__(self) -> int:
        return self._count

    # -- writing ----------------------------------------------------------------------------------
    def add(self, scope: Scope, text: str, vector, *, kind: str, importance: float, source: str,
            novelty: bool = True, now: float | None = None) -> tuple[str, Memory]:
        """Store a memory; returns (outcome, memory): `added`, `updated` (it replaced an older one
        about the same thing), `duplicate` or `known` (not novel enough: the existing one)."""
        now = time.time() if now is None else now
        vector = np.asarray(vector, dtype=np.float32)
        m = Memory(memory_id(scope, text), scope.tenant, scope.project, text, kind, source, float(importance),
                   now, now, now + self.ttl)
        with self._lock:
            p = self._projects.get(scope)
            if p is None:
                p = self._projects[scope] = _Project(self.dim)
            replaced: list[Memory] = []
            if p.memories:
                sims = p.matrix @ vector
                best = int(np.argmax(sims))
                old = p.memories[best]
                if sims[best] >= self.duplicate or old.id == m.id:
                    p.touch(best, now, self.ttl)
                    return "duplicate", old
                if sims[best] >= 1 - self.surprise:
                    if not novelty or _specifics(text) != _specifics(old.text):
                        replaced = p.drop([best])
                    else:
                        p.touch(best, now, self.ttl)
                        return "known", old
            p.append(m, vector)
            self._count += 1 - len(replaced)
            evicted = self._bound(scope, p)
            self._queue(("put", m.row(vector)), ("delete", [g.id for g in replaced + evicted]))
            return ("updated" if replaced else "added"), m

    def forget(self, scope: Scope, mid: str) -> Memory | None:
        """Delete `mid` if it is this scope's; another scope's id is not found."""
        with self._lock:
            p = self._projects.get(scope)
            row = p.row_of(mid) if p is not None else None
            if row is None:
                return None
            gone = p.drop([row])[0]
            self._count -= 1
        self._queue(("delete", [mid]))
        return gone

    def forget_ids(self, ids: list[str]) -> int:
        """Delete these ids in whatever scope holds them (an admin's delete; the model's goes
        through `forget`, which is scoped)."""
        wanted, n = set(ids), 0
        with self._lock:
            for p in self._projects.values():
                rows = [i for i, m in enumerate(p.memories) if m.id in wanted]
                if rows:
                    n += len(p.drop(rows))
            self._count -= n
        self._queue(("delete", list(wanted)))
        return n

    def _bound(self, scope: Scope, p: _Project) -> list[Memory]:
        """Evict past the per-project and total bounds: the least important, least recently used."""
        evicted = []
        while len(p.memories) > self.max_per_project:
            evicted += p.drop([int(np.argmin(p.importance.astype(np.float64) * 1e10 + p.used))])
        while self._count - len(evicted) > self.max_memories:
            victim = min(self._projects.values(), key=lambda q: q.used.min() if len(q.used) else float("inf"))
            evicted += victim.drop([int(np.argmin(victim.used))])
        self._count -= len(evicted)
        return evicted

    def _expire(self, scope: Scope, p: _Project, now: float) -> None:
        rows = [i for i, m in enumerate(p.memories) if m.expires <= now]
        if rows:
            gone = p.drop(rows)
            self._count -= len(gone)
            self._queue(("delete", [g.id for g in gone]))

    # -- the file ----------------------------------------------------------------------------------
    def _queue(self, *ops) -> None:
        ops = [op for op in ops if op[0] == "put" or op[1]]
        if self._pool is None or not ops:
            return
        self._pool.submit(self._write, ops)

    def _write(self, ops: list) -> None:
        try:
            db_service.call("memory.write", self.path, ops)
            self._seen_mtime = _mtime(self.path)
        except Exception:
            self.errors += len(ops)
            log.exception("memory store %s: %d writes lost", self.path, len(ops))

    def _load(self) -> None:
        rows = db_service.call("memory.load", self.path, [time.time()])
        projects: dict[Scope, _Project] = {}
        for mid, tenant, project, text, kind, source, importance, vector, created, accessed, expires in rows:
            if vector is None or len(vector) != self.dim:
                continue
            scope = Scope(tenant, project)
            p = projects.get(scope) or projects.setdefault(scope, _Project(self.dim))
            p.append(Memory(mid, tenant, project, text, kind, source, importance, created, accessed, expires), vector)
        with self._lock:
            self._projects = projects
            self._count = sum(len(p.memories) for p in projects.values())
        self._seen_mtime = _mtime(self.path)

    def maybe_reload(self, every: float = 2.0) -> None:
        """Load the file again if someone else wrote it (at most every `every` seconds; off the loop)."""
        now = time.monotonic()
        if self._pool is None or now - self._checked < every:
            return
        self._checked = now
        self._pool.submit(self._reload_if_changed)

    def _reload_if_changed(self) -> None:
        if _mtime(self.path) != self._seen_mtime:
            try:
                self._load()
            except Exception:
                log.exception("memory store %s: reload failed", self.path)

    def flush(self, timeout: float = 30.0) -> None:
        if self._pool is not None:
            self._pool.submit(lambda: None).result(timeout)

    def close(self) -> None:
        if self._pool is not None:
            self.flush()
            self._pool.shutdown(wait=True)
            self._pool = None
            db_service.call("memory.release", self.path)


def _specifics(text: str) -> frozenset[str]:
    return frozenset(_SPECIFIC.findall(text))


def _mtime(path: str):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


_stores: dict[str, MemoryStore] = {}
_refs: dict[str, int] = {}
_stores_lock = threading.Lock()


def open_memory(path: str, dim: int, **options) -> MemoryStore:
    """The process's store for this file (an old and a new pipeline during a reload share it);
    `close_memory(store)` when done."""
    key = str(Path(path).resolve())
    with _stores_lock:
        st = _stores.get(key)
        if st is None or st.dim != dim:
            st = _stores[key] = MemoryStore(dim, key, **options)
        else:
            for k, v in options.items():
                setattr(st, k, v)
        _refs[key] = _refs.get(key, 0) + 1
        return st


def close_memory(store: MemoryStore) -> None:
    with _stores_lock:
        key = store.path
        _refs[key] = _refs.get(key, 1) - 1
        if _refs[key] > 0:
            return
        _refs.pop(key, None)
        if _stores.get(key) is store:
            del _stores[key]
    store.close()


def memory_path(ctx, options: dict) -> str:
    """`with: {path}` or <state_dir>/memory.duckdb; never the telemetry file."""
    path = options.get("path") or os.path.join(ctx.state_dir, "memory.duckdb")
    tel = ((ctx.config.get("telemetry") or {}).get("path")) or ".lynkr/telemetry.duckdb"
    if os.path.abspath(tel) == os.path.abspath(path):
        raise ctx.error(f"the memory file {path} is the telemetry file; give memories their own path", "path")
    return path


# -- the file's operations (lynkr.storage.db_service) --------------------------------------------

@db_service.operation("memory.create")
def _create(path: str, _payload=None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with attached(path, ALIAS) as con:
        con.execute(_DDL)


@db_service.operation("memory.load")
def _load_rows(path: str, args: list) -> list:
    with attached(path, ALIAS) as con:
        return con.execute(f"SELECT {', '.join(COLUMNS)} FROM mem.memories WHERE expires > ? ORDER BY created",
                           args).fetchall()


@db_service.operation("memory.write")
def _write_ops(path: str, ops: list) -> None:
    with transaction(path, ALIAS) as con:
        for kind, arg in ops:
            if kind == "put":
                con.execute("DELETE FROM mem.memories WHERE id = ?", [arg[0]])
                insert(con, "mem.memories", COLUMNS, [[v] for v in arg])
            else:
                con.execute("DELETE FROM mem.memories WHERE id IN (SELECT unnest(?))", [arg])


@db_service.operation("memory.release")
def _release(path: str, _payload=None) -> None:
    release(path)


def file_op(path: str, sql_where: str, params: list, *, delete: bool = False, vectors: bool = False) -> list:
    """`lynkr memory` and the dashboard: the rows of the file matching a WHERE clause (with their
    vectors when asked), deleted too when `delete`. The running proxy notices the change."""
    return db_service.call("memory.select", path, [sql_where, params, delete, vectors])


@db_service.operation("memory.select")
def _select(path: str, args: list) -> list:
    where, params, delete, vectors = args
    if not Path(path).exists():
        return []
    cols = [c for c in COLUMNS if vectors or c != "vector"]
    with attached(path, ALIAS) as con:
        con.execute(_DDL)
        rows = con.execute(f"SELECT {', '.join(cols)} FROM mem.memories WHERE {where} ORDER BY project, created",
                           params).fetchall()
        if delete and rows:
            con.execute("DELETE FROM mem.memories WHERE id IN (SELECT unnest(?))", [[r[0] for r in rows]])
    return [dict(zip(cols, r)) for r in rows]
