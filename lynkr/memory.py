"""Handing freed memory back to the system.

glibc keeps the pages of freed allocations for reuse; after a burst of large requests, a loaded
model's freed protobuf or a DuckDB batch, that memory stays in the process's RSS for good unless
asked for back. `trim()` costs a few ms: call it after such work, never per request."""
from __future__ import annotations

import ctypes

__all__ = ["trim"]

_malloc_trim = None


def trim() -> None:
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):     # not glibc
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)
