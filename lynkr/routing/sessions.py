"""Per-session tier memory, so a tool loop never drops to a cheaper tier mid-task.

Dropping tier inside a loop switches model mid-task: the provider's prompt cache is lost and a
weaker model inherits a half-done plan. The floor is the highest tier the current task (the
same user ask in the same session) has been served; a new user turn starts afresh, except a short
follow-up ("yes, go ahead"), which carries on the previous task.
"""
from __future__ import annotations

from lynkr.kit.session import Sessions

__all__ = ["TierMemory"]


class TierMemory:
    """session key -> (ask fingerprint, highest tier index served for that ask), bounded by sessions."""

    def __init__(self, max_sessions: int = 10000):
        self._sessions: Sessions[tuple[int, int]] = Sessions(max_sessions)

    def floor(self, session: str, ask_key: int) -> int | None:
        got = self._sessions.get(session)
        return None if got is None or got[0] != ask_key else got[1]

    def last(self, session: str) -> int | None:
        """The tier the session's previous task was served on, whatever its ask."""
        got = self._sessions.get(session)
        return None if got is None else got[1]

    def record(self, session: str, ask_key: int, tier_index: int) -> None:
        got = self._sessions.get(session)
        if got is not None and got[0] == ask_key:
            tier_index = max(tier_index, got[1])
        self._sessions.set(session, (ask_key, tier_index))

    def __len__(self) -> int:
        return len(self._sessions)
