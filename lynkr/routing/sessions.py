"""Per-session tier memory, so a tool loop never drops to a cheaper tier mid-task.

Dropping tier inside a loop switches model mid-task: the provider's prompt cache is lost and a
weaker model inherits a half-done plan. The floor is the highest tier the current task (the
same user ask in the same session) has been served; a new user turn starts afresh, except a short
follow-up ("yes, go ahead"), which carries on the previous task.
"""
from __future__ import annotations

from collections import OrderedDict

__all__ = ["TierMemory"]


class TierMemory:
    """A bounded LRU: session key -> (ask fingerprint, highest tier index served for that ask)."""

    def __init__(self, max_sessions: int = 10000):
        self.max_sessions = max_sessions
        self._d: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def floor(self, session: str, ask_key: int) -> int | None:
        got = self._d.get(session)
        if got is None or got[0] != ask_key:
            return None
        self._d.move_to_end(session)
        return got[1]

    def last(self, session: str) -> int | None:
        """The tier the session's previous task was served on, whatever its ask."""
        got = self._d.get(session)
        return None if got is None else got[1]

    def record(self, session: str, ask_key: int, tier_index: int) -> None:
        got = self._d.get(session)
        if got is not None and got[0] == ask_key:
            tier_index = max(tier_index, got[1])
        self._d[session] = (ask_key, tier_index)
        self._d.move_to_end(session)
        while len(self._d) > self.max_sessions:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)
