"""The semantic cache's in-memory vector index: one numpy matrix per scope, TTL and a size bound.

Vectors are L2-normalised, so similarity is one matrix-vector product. Searches run on the
event loop (a few thousand rows × 384 floats is microseconds); inserts come from the `after`
hook. A lock keeps a search from seeing a half-grown matrix.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["VectorIndex", "Entry"]


@dataclass(slots=True)
class Entry:
    id: str
    scope: str
    text: str
    message: dict
    created: float
    expires: float
    hits: int = 0
    vector: np.ndarray | None = field(default=None, repr=False)


class _Scope:
    __slots__ = ("matrix", "entries")

    def __init__(self, dim: int):
        self.matrix = np.zeros((0, dim), dtype=np.float32)
        self.entries: list[Entry] = []


class VectorIndex:
    def __init__(self, dim: int, *, max_entries: int = 10_000, max_per_scope: int = 2_000):
        self.dim = dim
        self.max_entries = max_entries
        self.max_per_scope = max_per_scope
        self._scopes: dict[str, _Scope] = {}
        self._lock = threading.Lock()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, entry: Entry, vector: np.ndarray) -> list[Entry]:
        """Insert; returns the entries evicted to respect the bounds (oldest first)."""
        vec = np.asarray(vector, dtype=np.float32).reshape(1, self.dim)
        entry.vector = vec[0]
        evicted: list[Entry] = []
        with self._lock:
            sc = self._scopes.get(entry.scope)
            if sc is None:
                sc = self._scopes[entry.scope] = _Scope(self.dim)
            # The same question in the same scope replaces the older answer.
            for i, e in enumerate(sc.entries):
                if e.text == entry.text:
                    evicted.append(e)
                    self._remove_at(sc, i)
                    break
            sc.entries.append(entry)
            sc.matrix = np.vstack([sc.matrix, vec])
            self._count += 1
            while len(sc.entries) > self.max_per_scope:
                evicted.append(sc.entries[0])
                self._remove_at(sc, 0)
            if self._count > self.max_entries:
                # Evict a tenth at once: the sort over all entries is then paid once per many inserts.
                evicted += self._evict_oldest(self._count - self.max_entries + max(1, self.max_entries // 10))
        return evicted

    def load(self, rows: list[tuple[Entry, np.ndarray]]) -> None:
        """Bulk insert at start-up (one matrix per scope, not one copy per row), newest kept
        within the bounds."""
        by_scope: dict[str, list[tuple[Entry, np.ndarray]]] = {}
        for entry, vec in sorted(rows, key=lambda r: r[0].created)[-self.max_entries:]:
            by_scope.setdefault(entry.scope, []).append((entry, vec))
        with self._lock:
            for scope, items in by_scope.items():
                items = items[-self.max_per_scope:]
                sc = self._scopes.setdefault(scope, _Scope(self.dim))
                mat = np.asarray([v for _e, v in items], dtype=np.float32).reshape(len(items), self.dim)
                for (e, _v), row in zip(items, mat):
                    e.vector = row
                sc.entries.extend(e for e, _v in items)
                sc.matrix = np.vstack([sc.matrix, mat])
                self._count += len(items)

    def _remove_at(self, sc: _Scope, i: int) -> None:
        del sc.entries[i]
        sc.matrix = np.delete(sc.matrix, i, axis=0)
        self._count -= 1

    def _evict_oldest(self, n: int) -> list[Entry]:
        everything = sorted((e.created, key, e.id) for key, sc in self._scopes.items() for e in sc.entries)
        out = []
        for _created, key, eid in everything[:n]:
            sc = self._scopes[key]
            for i, e in enumerate(sc.entries):
                if e.id == eid:
                    out.append(e)
                    self._remove_at(sc, i)
                    break
        return out

    def search(self, scope: str, vector: np.ndarray, *, threshold: float, k: int = 5,
               now: float | None = None) -> list[tuple[float, Entry]]:
        """Live entries of `scope` with similarity >= threshold, best first."""
        now = time.time() if now is None else now
        with self._lock:
            sc = self._scopes.get(scope)
            if sc is None or not sc.entries:
                return []
            sims = sc.matrix @ np.asarray(vector, dtype=np.float32).reshape(self.dim)
            order = np.argsort(-sims)[: k * 2]
            out = []
            for i in order:
                s = float(sims[i])
                if s < threshold:
                    break
                e = sc.entries[i]
                if e.expires > now:
                    out.append((s, e))
                if len(out) >= k:
                    break
            return out

    def expire(self, now: float | None = None) -> list[Entry]:
        now = time.time() if now is None else now
        gone = []
        with self._lock:
            for key, sc in list(self._scopes.items()):
                keep = [i for i, e in enumerate(sc.entries) if e.expires > now]
                if len(keep) != len(sc.entries):
                    gone += [e for e in sc.entries if e.expires <= now]
                    self._count -= len(sc.entries) - len(keep)
                    sc.entries = [sc.entries[i] for i in keep]
                    sc.matrix = sc.matrix[keep]
                if not sc.entries:
                    del self._scopes[key]
        return gone

    def scopes(self) -> int:
        return len(self._scopes)
