"""Per-session tier memory, so a tool loop never drops to a cheaper tier mid-task.

Dropping tier inside a loop switches model mid-task: the provider's prompt cache is lost and a
weaker model inherits a half-done plan. The floor is the highest tier the current task (the
same user ask in the same session) has been served; a new user turn starts afresh, except a short
follow-up ("yes, go ahead"), which carries on the previous task.
"""
from __future__ import annotations

import hashlib

from lynkr.kit.session import Sessions
from lynkr.storage.shared_state import SharedState, Unavailable

__all__ = ["TierMemory", "SharedFloors", "ask_key"]


def ask_key(ask: str) -> int:
    """The ask's fingerprint, the same in every process (Python's str hash is salted per process,
    and replicas compare fingerprints through Redis)."""
    return int.from_bytes(hashlib.blake2b(ask.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


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

    def record(self, session: str, ask_key: int, tier_index: int) -> tuple[int, int]:
        """Remember the tier served; returns what the session holds now (ask key, floor)."""
        got = self._sessions.get(session)
        if got is not None and got[0] == ask_key:
            tier_index = max(tier_index, got[1])
        return self._sessions.set(session, (ask_key, tier_index))

    def merge(self, session: str, remote: tuple[int, int]) -> None:
        """Take the fleet's floor for the session (another replica served its last turn): it
        replaces a floor for another ask, and raises one for the same ask."""
        got = self._sessions.get(session)
        if got is None or got[0] != remote[0] or remote[1] > got[1]:
            self._sessions.set(session, (int(remote[0]), int(remote[1])))

    def __len__(self) -> int:
        return len(self._sessions)


class SharedFloors:
    """Session floors shared by the replicas (`state: {redis: URL}`): `<prefix>:floor:<session>` =
    `<ask key>:<tier index>`, with a Redis TTL of `TTL_S` from the last change. A turn reads it
    (one GET) before the memory decides, and writes it when the floor changed (a new task, a
    higher tier): a tool loop whose turns land on different replicas keeps its tier."""

    TTL_S = 6 * 3600

    def __init__(self, state: SharedState):
        self.state = state

    async def fetch(self, session: str) -> tuple[int, int] | None:
        try:
            raw = await self.state.run("floor.get", lambda r: r.get(self.state.key("floor", session)))
        except Unavailable:
            return None
        ask, _, tier = (raw or b"").partition(b":")
        try:
            return (int(ask), int(tier)) if raw else None
        except ValueError:
            return None

    async def store(self, session: str, floor: tuple[int, int]) -> None:
        value = f"{floor[0]}:{floor[1]}"
        try:
            await self.state.run("floor.set", lambda r: r.set(self.state.key("floor", session), value, ex=self.TTL_S))
        except Unavailable:
            pass
