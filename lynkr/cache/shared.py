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

import time

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
    """semantic_cache's entries, shared through one Redis stream per stage (see the module docstring)."""

    def __init__(self, state: SharedState, pipeline: str, stage_id: str, *, ttl: float, max_entries: int, dim: int):
        self.state = state
        self.stream = state.key("semantic", pipeline, stage_id)
        self.ttl = ttl
        self.max_entries = max_entries
        self.dim = dim
        self.last_id: bytes | None = None      # the newest stream id taken in; None: not caught up yet
        self.batch = 1000

    async def publish(self, entry, vector) -> bool:
        fields = {"id": entry.id, "scope": entry.scope, "text": entry.text, "key": entry.key,
                  "message": orjson.dumps(entry.message), "created": repr(entry.created),
                  "expires": repr(entry.expires), "from": self.state.instance}
        if vector is not None:
            fields["vector"] = np.asarray(vector, dtype=np.float32).tobytes()
        oldest = int((time.time() - self.ttl) * 1000)

        async def add(r):
            async with r.pipeline(transaction=False) as p:
                # MINID trims what outlived the ttl; MAXLEN would need a second XADD option, so the
                # size bound is an XTRIM in the same round trip.
                p.xadd(self.stream, fields, minid=oldest, approximate=True)
                p.xtrim(self.stream, maxlen=self.max_entries, approximate=True)
                p.pexpire(self.stream, int(self.ttl * 1000))
                return await p.execute()
        try:
            await self.state.run("semantic.publish", add)
        except Unavailable:
            return False
        return True

    async def pull(self) -> list[tuple[dict, np.ndarray | None]]:
        """The entries other replicas stored since the last pull: [(fields, vector or None)].
        The first pull (or the first after Redis came back) reads the newest `max_entries`."""
        try:
            if self.last_id is None:
                got = await self.state.run("semantic.catch_up", lambda r: r.xrevrange(
                    self.stream, count=self.max_entries))
                rows = list(reversed(got or []))
                self.last_id = rows[-1][0] if rows else b"0-0"
            else:
                got = await self.state.run("semantic.pull", lambda r: r.xread(
                    {self.stream: self.last_id}, count=self.batch))
                rows = got[0][1] if got else []
                if rows:
                    self.last_id = rows[-1][0]
        except Unavailable:
            return []
        now = time.time()
        out = []
        mine = self.state.instance.encode()
        for _sid, fields in rows:
            if fields.get(b"from") == mine:
                continue
            entry = _decoded(fields, now, self.dim)
            if entry is not None:
                out.append(entry)
        return out

    def forget_position(self) -> None:
        """After an outage: catch up from the newest entries again (the stream may have been trimmed
        or Redis restarted empty, so the last-seen id may mean nothing)."""
        self.last_id = None


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
