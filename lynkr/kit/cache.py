"""One bounded cache for every stage and library: `Bounded`, and `remembered` for a function of it.

A coding agent resends the same system prompt, tools, reminders and tool results every turn, so
work that depends on a text or a part alone is done once and looked up after. Every such table in
Lynkr is a `Bounded`: a mapping limited by its number of entries, by a size each entry declares
(bytes, characters), or both.

Two ways to forget, chosen per table:

- **generations** (the default, for memos on the request path): two dicts. A hit in the older one
  moves to the newer; when the newer one is full, the older one is dropped. It keeps what an LRU
  keeps for a plain dict lookup, with no bookkeeping on a hit and no lock (a lookup racing a swap
  from another thread at worst computes a value again). A table's bound is the two generations
  together.
- **lru=True** (for state that must not vanish in a swap: stored answers, session state): an exact
  least-recently-used order behind a lock, so threads may share it.

    texts = Bounded(max_size=1_000_000)          # sizes the entries declare
    texts.put(text, facts, size=len(text) + 200)
    hit = texts.get(text)

    @remembered(max_entries=4096)
    def name_parts(name: str) -> tuple[str, ...]: ...
"""
from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Generic, Hashable, TypeVar

__all__ = ["Bounded", "remembered", "text_size"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Bounded(dict, Generic[K, V]):
    """A mapping that forgets, bounded by `max_entries`, by `max_size` (the sum of the sizes given
    to `put`), or both. `get(key)` (None when absent: values are never None) and `put(key, value,
    size)` are all a caller needs; `lru=True` makes an exact LRU (see the module's docstring)."""

    __slots__ = ("max_entries", "max_size", "_size", "_old", "_sizes", "_old_sizes")

    def __new__(cls, max_entries: int | None = None, max_size: int | None = None, *, lru: bool = False):
        return dict.__new__(_LRU if lru and cls is Bounded else cls)

    def __init__(self, max_entries: int | None = None, max_size: int | None = None, *, lru: bool = False):
        dict.__init__(self)
        if max_entries is None and max_size is None:
            raise ValueError("a Bounded needs max_entries, max_size or both")
        self.max_entries = max_entries
        self.max_size = max_size
        self._size = 0
        self._old: dict = {}
        self._sizes: dict | None = {} if max_size is not None else None
        self._old_sizes: dict = {}

    # The newer generation is the dict itself: a hit is one lookup in C, and only a miss comes
    # back to Python (__missing__) to look in the older one.
    get = dict.__getitem__

    def __missing__(self, key: K) -> V | None:
        old = self._old
        value = old.pop(key, None)
        if value is not None:
            self.put(key, value, self._old_sizes.get(key, 1))
        return value

    def put(self, key: K, value: V, size: int = 1) -> V:
        """Store `value` (never None) and return it."""
        dict.__setitem__(self, key, value)
        self._size += size
        if self._sizes is not None:
            self._sizes[key] = size
        if ((self.max_entries is not None and dict.__len__(self) * 2 >= self.max_entries)
                or (self.max_size is not None and self._size * 2 >= self.max_size)):
            self._old = dict(self)
            self._old_sizes = self._sizes or {}
            dict.clear(self)
            self._size = 0
            if self._sizes is not None:
                self._sizes = {}
        return value

    def pop(self, key: K, default: Any = None) -> V | Any:
        got = dict.pop(self, key, None)
        if got is None:
            got = self._old.pop(key, None)
        return default if got is None else got

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._old

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._old)

    def items(self) -> list[tuple[K, V]]:       # type: ignore[override]
        return [*self._old.items(), *dict.items(self)]

    def clear(self) -> None:
        dict.clear(self)
        self._old, self._old_sizes = {}, {}
        if self._sizes is not None:
            self._sizes = {}
        self._size = 0

    @property
    def size(self) -> int:
        """The sizes held (an LRU table's exactly; a generations table's newer half)."""
        return self._size

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self)} entries>"

    __eq__ = object.__eq__
    __hash__ = object.__hash__


class _LRU(Bounded):
    """`Bounded(..., lru=True)`: entries (value, size) in use order, behind a lock."""

    __slots__ = ("_lock",)

    def __init__(self, max_entries: int | None = None, max_size: int | None = None, *, lru: bool = True):
        super().__init__(max_entries, max_size)
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:           # type: ignore[override]
        with self._lock:
            got = dict.pop(self, key, None)
            if got is None:
                return None
            dict.__setitem__(self, key, got)     # to the end: most recently used
            return got[0]

    def put(self, key: K, value: V, size: int = 1) -> V:
        self.evicting_put(key, value, size)
        return value

    def evicting_put(self, key: K, value: V, size: int = 1) -> list[K]:
        """`put` that also says which keys it forgot (to delete them elsewhere). The least
        recently used entries go until the bounds hold, never the one just stored."""
        gone: list = []
        with self._lock:
            old = dict.pop(self, key, None)
            if old is not None:
                self._size -= old[1]
            dict.__setitem__(self, key, (value, size))
            self._size += size
            while dict.__len__(self) > 1 and (
                    (self.max_entries is not None and dict.__len__(self) > self.max_entries)
                    or (self.max_size is not None and self._size > self.max_size)):
                k = next(iter(dict.keys(self)))
                self._size -= dict.pop(self, k)[1]
                gone.append(k)
        return gone

    def pop(self, key: K, default: Any = None) -> V | Any:
        with self._lock:
            got = dict.pop(self, key, None)
            if got is None:
                return default
            self._size -= got[1]
            return got[0]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key)

    def __len__(self) -> int:
        return dict.__len__(self)

    def items(self) -> list[tuple[K, V]]:       # type: ignore[override]
        with self._lock:
            return [(k, v[0]) for k, v in dict.items(self)]

    def clear(self) -> None:
        with self._lock:
            dict.clear(self)
            self._size = 0


def text_size(text: str) -> int:
    """A text's entry size: its characters and the entry's own overhead (many texts are short)."""
    return len(text) + 100


class Remembered(Generic[V]):
    """`fn` remembered in a Bounded; several arguments are keyed by their tuple. `fn` must be pure,
    never return None, and take hashable arguments."""

    __slots__ = ("fn", "table", "size", "__wrapped__", "__name__")

    def __init__(self, fn: Callable[..., V], table: Bounded, size: Callable[[Any], int] | None):
        self.fn = fn
        self.table = table
        self.size = size
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", "remembered")

    def __call__(self, *args) -> V:
        hit = self.table[args]
        if hit is None:
            hit = self.table.put(args, self.fn(*args), 1 if self.size is None else self.size(args))
        return hit

    def cache_clear(self) -> None:
        self.table.clear()


class _RememberedText(Remembered[V]):
    """One argument, the key itself: the request path's memos (a text's stripped form, a name's
    parts), where the call costs about a dict lookup on a hit."""

    __slots__ = ()

    def __call__(self, arg) -> V:
        hit = self.table[arg]          # the dict's own subscript: a miss asks __missing__ (None)
        if hit is None:
            hit = self.table.put(arg, self.fn(arg), 1 if self.size is None else self.size(arg))
        return hit


def remembered(fn: Callable[..., V] | None = None, *, max_entries: int | None = None,
               max_size: int | None = None, size: Callable[[Any], int] | None = None):
    """`fn` computed once per distinct argument(s), in a Bounded table (generations). As a
    decorator (`@remembered(max_entries=4096)`) or a call (`remembered(fn, max_size=…, size=len)`).
    Bounded by size, `size(key)` is what each entry costs (say `len` of a text, plus overhead)."""
    def wrap(f: Callable[..., V]) -> Remembered[V]:
        table = Bounded(max_entries, max_size)
        try:
            one = len(inspect.signature(f).parameters) == 1
        except (TypeError, ValueError):
            one = False
        return (_RememberedText if one else Remembered)(f, table, size)
    return wrap if fn is None else wrap(fn)
