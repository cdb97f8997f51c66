"""The caches' shared tier in Redis (`state: {redis: URL}`, lynkr/storage/shared_state.py): what one
replica stores, the others find. Each stage keeps its in-process tier in front (an LRU of answers,
a vector index per scope); this is what lies behind it.

- `SharedAnswers` (exact_cache): one Redis string per key, `<expires>\\n<answer JSON>`, with a
  Redis TTL of the stage's `ttl`. A local miss costs one GET.
- `SharedEntries` (semantic_cache): one Redis stream per stage that every replica appends its new
  entries to (question, scope, guard key, answer, and the vector when it was embedded) and reads
  from its last-seen id: one XREAD per lookup brings in what the others stored since the last one,
  which the local index takes in like its own (an entry without a vector waits under its guard key,
  as local ones do). The stream is trimmed to the stage's `ttl` (XADD MINID: stream ids are
  milliseconds) and to `max_entries`, and the key itself expires `ttl` after the last write.

Both fail soft: when Redis is unavailable a lookup is a local-only lookup and a store is local only.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

import numpy as np
import orjson

from lynkr.storage.shared_state import SharedState, Unavailable

__all__ = ["SharedAnswers", "SharedEntries"]


class SharedAnswers:
    """exact_cache's answers by key, shared through Redis."""

    def __init__(self, state: SharedState, pipeline: str, stage_id: str):
        self.state = state
        self.prefix = state.key("exact", pipeline, stage_id, "")

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """(answer JSON, expires) or None (absent, expired, or Redis unavailable)."""
        try:
            raw = await self.state.run("exact.get", lambda r: r.get(self.prefix + key))
        except Unavailable:
            return None
        if not raw:
            return None
        head, _, blob = raw.partition(b"\n")
        try:
            expires = float(head)
        except ValueError:
            return None
        return (blob, expires) if expires > time.time() and blob else None

    async def put(self, key: str, blob: bytes, expires: float) -> bool:
        ms = int((expires - time.time()) * 1000)
        if ms <= 0:
            return False
        value = b"%.3f\n" % expires + blob
        try:
            await self.state.run("exact.set", lambda r: r.set(self.prefix + key, value, px=ms))
        except Unavailable:
            return False
        return True


_FIELDS = (b"id", b"scope", b"text", b"key", b"message", b"created", b"expires")


class SharedEntries:
    """semantic_cache's entries, shared through one Redis stream per stage (see the module docstring).
    `take(entries)` receives what other replicas stored: [(fields, vector or None)]."""

    CATCH_UP_TIMEOUT_S = 10.0

    def __init__(self, state: SharedState, pipeline: str, stage_id: str, *, ttl: float, max_entries: int, dim: int,
                 take: Callable[[list], None]):
        self.state = state
        self.stream = state.key("semantic", pipeline, stage_id)
        self.ttl = ttl
        self.max_entries = max_entries
        self.dim = dim
        self.take = take
        self.last_id: tuple[int, int] | None = None     # the newest stream id taken in; None: catch up first
        self.batch = 1000
        self._catching: asyncio.Task | None = None

    async def publish(self, entry, vector) -> bool:
        fields = {"id": entry.id, "scope": entry.scope, "text": entry.text, "key": entry.key,
                  "message": orjson.dumps(entry.message), "created": repr(entry.created),
                  "expires": repr(entry.expires), "from": self.state.instance}
        if vector is not None:
            fields["vector"] = np.asarray(vector, dtype=np.float32).tobytes()
        oldest = int((time.time() - self.ttl) * 1000)

        async def add(r):
            async with r.pipeline(transaction=False) as p:
                # MINID drops what outlived the ttl (stream ids are milliseconds); the size bound
                # is an XTRIM in the same round trip.
                p.xadd(self.stream, fields, minid=oldest, approximate=True)
                p.xtrim(self.stream, maxlen=self.max_entries, approximate=True)
                p.pexpire(self.stream, int(self.ttl * 1000))
                return await p.execute()
        try:
            await self.state.run("semantic.publish", add)
        except Unavailable:
            return False
        return True

    async def refresh(self) -> None:
        """Take in what the other replicas stored since the last refresh: one XREAD. The first
        time (and after an outage) it reads the newest `max_entries` instead, in the background,
        waiting for it at most one command timeout: a big stream never holds a request up."""
        if self.last_id is None:
            if self._catching is None or self._catching.done():
                self._catching = self.state.background(self._catch_up())
            await asyncio.wait({self._catching}, timeout=self.state.timeout)
            return
        since = self.last_id
        try:
            got = await self.state.run("semantic.pull", lambda r: r.xread(
                {self.stream: f"{since[0]}-{since[1]}"}, count=self.batch))
        except Unavailable:
            return
        self._take(got[0][1] if got else [])

    async def _catch_up(self) -> None:
        try:
            got = await self.state.run("semantic.catch_up", lambda r: r.xrevrange(self.stream, count=self.max_entries),
                                       timeout=self.CATCH_UP_TIMEOUT_S)
        except Unavailable:
            return
        rows = list(reversed(got or []))
        self._take(rows)
        if self.last_id is None:
            self.last_id = (0, 0)

    def _take(self, rows: list) -> None:
        if not rows:
            return
        newest = _stream_id(rows[-1][0])
        if self.last_id is None or newest > self.last_id:
            self.last_id = newest
        now = time.time()
        mine = self.state.instance.encode()
        found = [e for _sid, fields in rows if fields.get(b"from") != mine
                 and (e := _decoded(fields, now, self.dim)) is not None]
        if found:
            self.take(found)

    def forget_position(self) -> None:
        """After an outage: catch up from the newest entries again (Redis may have restarted
        empty, or trimmed what this replica had not read yet)."""
        self.last_id = None


def _stream_id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.decode().partition("-")
    return int(ms), int(seq or 0)


def _decoded(fields: dict, now: float, dim: int) -> tuple[dict, np.ndarray | None] | None:
    if any(f not in fields for f in _FIELDS):
        return None
    try:
        expires = float(fields[b"expires"])
        if expires <= now:
            return None
        got = {"id": fields[b"id"].decode(), "scope": fields[b"scope"].decode(), "text": fields[b"text"].decode(),
               "key": fields[b"key"].decode(), "message": orjson.loads(fields[b"message"]),
               "created": float(fields[b"created"]), "expires": expires}
    except (ValueError, UnicodeDecodeError, orjson.JSONDecodeError):
        return None
    raw = fields.get(b"vector")
    vector = np.frombuffer(raw, dtype=np.float32).copy() if raw and len(raw) == dim * 4 else None
    return got, vector
