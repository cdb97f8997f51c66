"""The semantic cache's in-memory vector index: one numpy matrix per scope, TTL and a size bound.

An entry carries a `key` (the guard's signature of its question): a question can only hit an entry
with its key, so `holds(scope, key)` says whether a lookup could hit before anything is embedded.
Entries stored without a vector wait under their key (`add(entry, None)`) until a question with that
key arrives (`waiting(scope, key)` hands them over to be embedded then): an answer nobody asks for
again is never embedded.

Vectors are L2-normalised, so similarity is one matrix-vector product. Searches run on the
event loop (a few thousand rows × 384 floats is microseconds); inserts come from the `after`
hook. A lock keeps a search from seeing a half-grown matrix.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass

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
    key: str = ""                 # what a question must share to be compared at all (guard.signature)


class _Scope:
    """One scope's vectors, one row per slot, in a matrix that grows by doubling (up to the
    scope's bound) and is then reused in place: an insert writes one row into a free slot. Growing
    it by np.vstack and shrinking it by np.delete copied the whole matrix twice per insert: ~0.3 ms
    of event loop and ~20 MB of fragmented heap at 2,000 rows. Free rows are zero."""
    __slots__ = ("matrix", "slots", "order", "free", "rows", "keys")

    def __init__(self, dim: int):
        self.matrix = np.zeros((0, dim), dtype=np.float32)
        self.slots: list[Entry | None] = []   # row i's entry; None when the row is free
        self.order: deque[int] = deque()      # live rows, oldest insert first
        self.free: list[int] = []
        self.rows: dict[str, int] = {}       # question text -> its row
        self.keys: Counter[str] = Counter()  # entry key -> live rows with it

    def __len__(self) -> int:
        return len(self.order)

    def put(self, entry: Entry, vec: np.ndarray, bound: int) -> None:
        if self.free:
            i = self.free.pop()
        else:
            i = len(self.slots)
            if i == self.matrix.shape[0]:
                grown = np.zeros((min(max(16, 2 * i), max(bound, i + 1)), self.matrix.shape[1]), dtype=np.float32)
                grown[:i] = self.matrix
                self.matrix = grown
            self.slots.append(None)
        self.slots[i] = entry
        self.rows[entry.text] = i
        self.keys[entry.key] += 1
        self.matrix[i] = vec
        self.order.append(i)

    def remove(self, i: int) -> Entry:
        entry, self.slots[i] = self.slots[i], None
        del self.rows[entry.text]
        self.keys[entry.key] -= 1
        if not self.keys[entry.key]:
            del self.keys[entry.key]
        self.matrix[i] = 0.0
        if self.order[0] == i:
            self.order.popleft()
        else:
            self.order.remove(i)
        self.free.append(i)
        return entry

    def live(self):
        return ((i, self.slots[i]) for i in self.order)


class VectorIndex:
    def __init__(self, dim: int, *, max_entries: int = 10_000, max_per_scope: int = 2_000):
        self.dim = dim
        self.max_entries = max_entries
        self.max_per_scope = max_per_scope
        self._scopes: dict[str, _Scope] = {}
        self._lock = threading.Lock()
        self._count = 0
        self._sweeps = 0
        self._waiting: OrderedDict[tuple[str, str], list[Entry]] = OrderedDict()
        self._waiting_count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, entry: Entry, vector: np.ndarray | None) -> list[Entry]:
        """Insert; returns the entries evicted to respect the bounds (oldest first). Without a
        vector the entry waits under its key (see the module docstring)."""
        if vector is None:
            return self._wait(entry)
        vec = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        evicted: list[Entry] = []
        with self._lock:
            sc = self._scopes.get(entry.scope)
            if sc is None:
                sc = self._scopes[entry.scope] = _Scope(self.dim)
            # The same question in the same scope replaces the older answer.
            same = sc.rows.get(entry.text)
            if same is not None:
                evicted.append(sc.remove(same))
                self._count -= 1
            while len(sc) >= self.max_per_scope:
                evicted.append(sc.remove(sc.order[0]))
                self._count -= 1
            sc.put(entry, vec, self.max_per_scope)
            self._count += 1
            if self._count > self.max_entries:
                # Evict a tenth at once: the sort over all entries is then paid once per many inserts.
                evicted += self._evict_oldest(self._count - self.max_entries + max(1, self.max_entries // 10))
        return evicted

    def load(self, rows: list[tuple[Entry, np.ndarray]]) -> None:
        """Bulk insert at start-up, oldest first, so the bounds keep the newest."""
        for entry, vec in sorted(rows, key=lambda r: r[0].created)[-self.max_entries:]:
            self.add(entry, vec)

    def _evict_oldest(self, n: int) -> list[Entry]:
        everything = sorted((e.created, key, i) for key, sc in self._scopes.items() for i, e in sc.live())
        out = []
        for _created, key, i in everything[:n]:
            out.append(self._scopes[key].remove(i))
            self._count -= 1
        return out

    def holds(self, scope: str, key: str) -> bool:
        """Whether `scope` has an embedded entry with `key`: a lookup could hit."""
        with self._lock:
            sc = self._scopes.get(scope)
            return sc is not None and sc.keys.get(key, 0) > 0

    def _wait(self, entry: Entry) -> list[Entry]:
        with self._lock:
            slot = self._waiting.setdefault((entry.scope, entry.key), [])
            evicted = [e for e in slot if e.text == entry.text]       # the same question: replaced
            slot[:] = [e for e in slot if e.text != entry.text] + [entry]
            self._waiting.move_to_end((entry.scope, entry.key))
            self._waiting_count += 1 - len(evicted)
            while self._waiting_count > self.max_entries:
                _k, oldest = self._waiting.popitem(last=False)
                self._waiting_count -= len(oldest)
                evicted += oldest
            return evicted

    def waiting(self, scope: str, key: str, now: float | None = None) -> list[Entry]:
        """The unexpired entries stored without a vector under (scope, key), handed over (they
        leave the waiting list; the caller adds them back with their vectors)."""
        now = time.time() if now is None else now
        with self._lock:
            got = self._waiting.pop((scope, key), [])
            self._waiting_count -= len(got)
        return [e for e in got if e.expires > now]

    def search(self, scope: str, vector: np.ndarray, *, threshold: float, k: int = 5,
               now: float | None = None) -> list[tuple[float, Entry]]:
        """Live entries of `scope` with similarity >= threshold, best first."""
        now = time.time() if now is None else now
        with self._lock:
            sc = self._scopes.get(scope)
            if sc is None or not len(sc):
                return []
            sims = sc.matrix[:len(sc.slots)] @ np.asarray(vector, dtype=np.float32).reshape(self.dim)
            # Usually nothing passes (a miss): then no sort at all.
            above = np.flatnonzero(sims >= threshold)
            out = []
            for i in above[np.argsort(-sims[above])][: k * 2]:
                e = sc.slots[i]
                if e is not None and e.expires > now:
                    out.append((float(sims[i]), e))
                if len(out) >= k:
                    break
            return out

    def sweep(self, now: float | None = None, every: int = 256) -> list[Entry]:
        """`expire` on every `every`-th call only. A search never serves an expired entry, so
        expiring frees memory and nothing else; a full pass per store cost ~45 % of a small
        request's CPU once the index was full (its size, then a multiple of 256, stopped moving)."""
        self._sweeps += 1
        return self.expire(now) if self._sweeps % every == 0 else []

    def expire(self, now: float | None = None) -> list[Entry]:
        now = time.time() if now is None else now
        gone = []
        with self._lock:
            for key, sc in list(self._scopes.items()):
                for i in [i for i, e in sc.live() if e.expires <= now]:
                    gone.append(sc.remove(i))
                    self._count -= 1
                if not len(sc):
                    del self._scopes[key]
            for where, entries in list(self._waiting.items()):
                kept = [e for e in entries if e.expires > now]
                gone += [e for e in entries if e.expires <= now]
                self._waiting_count -= len(entries) - len(kept)
                if kept:
                    self._waiting[where] = kept
                else:
                    del self._waiting[where]
        return gone

    def scopes(self) -> int:
        return len(self._scopes)

    def rows(self, scope: str) -> int:
        """The rows the scope's matrix holds (live and free: a freed row is reused, not dropped)."""
        sc = self._scopes.get(scope)
        return 0 if sc is None else sc.matrix.shape[0]

    def entries(self):
        """Every live entry with its vector, scope by scope, oldest first."""
        for sc in list(self._scopes.values()):
            for i, entry in sc.live():
                yield entry, sc.matrix[i]
