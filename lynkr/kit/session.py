"""Per-session state for stages: what a stage remembers about one conversation between its turns.

A stage that must stay consistent across a session's turns (the tier a tool loop started on, the
tools already sent, what was compressed) keeps it in a `Sessions` table: session key -> state,
the least recently active sessions forgotten past `max_sessions`, safe to share with threads.

    self.kept = Sessions(options["sessions"], factory=set)
    tools = self.kept.of(session_key(x))          # created on first use
    was = self.kept.get(session_key(x))           # None for a session not seen (or forgotten)
"""
from __future__ import annotations

import hashlib
from typing import Callable, Generic, TypeVar

import orjson

from lynkr.exchange import Exchange
from lynkr.kit.cache import Bounded

__all__ = ["Sessions", "session_key"]

T = TypeVar("T")


class Sessions(Generic[T]):
    """session key -> T, bounded by sessions (least recently active go first)."""

    __slots__ = ("_table", "factory")

    def __init__(self, max_sessions: int, factory: Callable[[], T] | None = None):
        self._table: Bounded[str, T] = Bounded(max_entries=max_sessions, lru=True)
        self.factory = factory

    def get(self, session: str) -> T | None:
        """The session's state, or None; a found session counts as active."""
        return self._table.get(session)

    def of(self, session: str) -> T:
        """The session's state, made by `factory` the first time."""
        got = self._table.get(session)
        if got is None:
            if self.factory is None:
                raise TypeError("Sessions.of needs a factory")
            got = self._table.put(session, self.factory())
        return got

    def set(self, session: str, state: T) -> T:
        return self._table.put(session, state)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, session: str) -> bool:
        return session in self._table


def session_key(x: Exchange) -> str:
    """The client's session id, or, without one, a digest of the first message: the first message
    identifies a conversation well enough, and it never changes between its turns."""
    if x.session:
        return x.session
    msgs = x.request.get("messages") or [None]
    try:
        first = orjson.dumps(msgs[0])
    except TypeError:               # not JSON (a library caller's object)
        first = repr(msgs[0]).encode()
    return "h:" + hashlib.sha256(first).hexdigest()[:24]
