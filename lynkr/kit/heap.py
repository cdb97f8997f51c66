"""Handing memory back: freed pages to the system, and the slack of JSON kept for long.

glibc keeps the pages of freed allocations for reuse; after a burst of large requests, a loaded
model's freed protobuf or a DuckDB batch, that memory stays in the process's RSS for good unless
asked for back. `trim()` costs a few ms: call it after such work, never per request.

orjson (3.12 and later) returns `dumps` output in a buffer many times its length and never
shrinks it: 4 KB for a 60-byte answer, ~260 KB for 20 KB of JSON (tracemalloc; orjson#483, and
Home Assistant trims its cached fragments the same way). Harmless for a body sent and dropped;
in a cache it stays resident: 5,000 exact-cache answers held ~20 MB for ~2 MB of JSON. `kept()`
copies the bytes into an allocation of their size, for anything stored past the request."""
from __future__ import annotations

import ctypes
import os

__all__ = ["trim", "kept", "fix_mmap_threshold"]

_malloc_trim = None
_M_MMAP_THRESHOLD = -3


def trim() -> None:
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):     # not glibc
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


def kept(raw: bytes) -> bytes:
    """`raw` in an allocation of its own size: for orjson output that outlives the request."""
    return bytes(memoryview(raw))


def fix_mmap_threshold(size: int = 128 * 1024) -> None:
    """Large allocations (>= `size`) always from mmap, returned to the system when freed. glibc
    otherwise raises its threshold to the largest block freed so far (up to 32 MB), after which a
    request's big buffers (a 62 KB body's copies, orjson's oversized output) come from the heap and
    fragment it. Measured, `--workers 2` default.yaml 62 KB soak: writer process 178 -> 217 MB
    over 12k-74k requests before, 140 -> 146 MB over 10k-52k after; workers ~15-25 MB lower.
    Setting `MALLOC_MMAP_THRESHOLD_` yourself wins."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, size)
    except (OSError, AttributeError):       # not glibc
        pass
