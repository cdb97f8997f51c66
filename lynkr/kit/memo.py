"""A function of a text, remembered per text.

A coding agent resends the same system prompt, reminders, user messages and tool results every
turn, so work that depends on a text alone (stripping harness blocks, searching for error words)
is done once a text. The memo is bounded by the characters it holds; when full it starts afresh
(the next request refills what is current), which costs one dict clear instead of an LRU's
bookkeeping on every hit.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

__all__ = ["per_text"]

T = TypeVar("T")


class per_text(Generic[T]):
    """`per_text(fn)(text)` is `fn(text)`, computed once per distinct text. `fn` must be pure and
    never return None."""

    __slots__ = ("fn", "max_chars", "_seen", "_chars")

    def __init__(self, fn: Callable[[str], T], max_chars: int = 1_000_000):
        self.fn = fn
        self.max_chars = max_chars
        self._seen: dict[str, T] = {}
        self._chars = 0

    def __call__(self, text: str) -> T:
        hit = self._seen.get(text)
        if hit is None:
            hit = self.fn(text)
            if self._chars + len(text) > self.max_chars:
                self._seen.clear()
                self._chars = 0
            self._seen[text] = hit
            self._chars += len(text) + 100      # the entry's own overhead: many texts are short
        return hit
