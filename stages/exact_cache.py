"""exact_cache: the same request again gets the stored answer, in the client's own protocol.

    - id: exact
      uses: exact_cache
      with: {ttl: 3600}

The key covers everything that changes an answer: the model, the system prompt, the tools, the
whole history and the sampling and output parameters (temperature, max_tokens, thinking, …).
Volatile parts are normalised first (Claude Code's billing line, dates, the git status snapshot,
tool call ids), so a retry or a re-run of the same conversation hits. Only complete, successful
answers are stored (stop_reason end_turn or stop_sequence; tool calls only with `tool_use: true`).
A hit answers with `x-lynkr-cache: exact`; `x-lynkr-cache: bypass` on a request skips the cache.
With `state: {redis: URL}` the answers are shared by every replica (lynkr/cache/shared.py): the
in-memory LRU stays in front, a local miss asks Redis (one GET), a store also goes there with a
Redis TTL of `ttl`; while Redis is unavailable the cache is local only.
"""
from __future__ import annotations

import asyncio
import time

import orjson

from lynkr.cache.answers import answer_of, bypassed, record_saved, replay, storable
from lynkr.cache.scope import exact_key
from lynkr.cache.shared import SharedAnswers
from lynkr.storage.cache_store import cache_path, open_store
from lynkr.exchange import Exchange
from lynkr.kit.cache import Bounded
from lynkr.kit.heap import kept
from lynkr.stage import Stage


class ExactCache(Stage):
    name = "exact_cache"
    edits = "copy-on-write"
    summary = "Answers a repeated request (same model, system, tools, history, parameters) from a stored response."
    status = "stable"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "ttl": {"type": "number", "exclusiveMinimum": 0, "default": 3600,
                    "description": "Seconds a stored answer stays valid."},
            "max_entries": {"type": "integer", "minimum": 1, "default": 5000,
                            "description": "Answers kept in memory; the least recently used go first."},
            "tool_use": {"type": "boolean", "default": False,
                         "description": "Also store answers that call tools (the same history asks for the same call)."},
            "per_session": {"type": "boolean", "default": False,
                            "description": "Key by the client's session too, so sessions never share answers."},
            "scope_headers": {"type": "array", "items": {"type": "string"}, "default": ["x-lynkr-tenant"],
                              "description": "Request headers whose values are part of the key (tenants, projects)."},
            "persist": {"type": "boolean", "default": True,
                        "description": "Keep answers in <state_dir>/cache.duckdb so a restart keeps them."},
            "path": {"type": ["string", "null"], "default": None,
                     "description": "The cache file; default <state_dir>/cache.duckdb (never the telemetry file)."},
            "bypass": {"type": "boolean", "default": False,
                       "description": "Skip the cache for every request (the stage stays in the plan, recording bypasses)."},
        },
    }
    examples = ["- {id: exact, uses: exact_cache, with: {ttl: 600}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.ttl = float(options["ttl"])
        self.max_entries = int(options["max_entries"])
        # An answer is kept as its JSON, one object, not the tree of dicts and strings it parses
        # into: thousands of long-lived small objects, evicted and replaced on every miss, pin
        # Python's allocator pools all over the heap (with the cache on, a 62 KB-miss soak ran
        # ~30-40 MB above the same soak without it). A hit parses it again (microseconds). The JSON
        # is copied out of orjson's oversized buffer (lynkr.kit.heap.kept): 4 KB an answer otherwise.
        self._entries: Bounded[str, tuple[bytes, float]] = Bounded(max_entries=self.max_entries, lru=True)
        self.store = None
        state = ctx.shared.get("state")
        self.shared = SharedAnswers(state, ctx.pipeline_name, self.id) if state is not None and not ctx.dry_run else None
        if options["persist"] and not ctx.dry_run:
            self.store = open_store(cache_path(ctx, options))
            for row in self.store.load("exact", self.id)[-self.max_entries:]:
                self._entries.put(row["scope"], (kept(orjson.dumps(row["message"])), row["expires"]))

    def _key(self, x: Exchange) -> str:
        extra = [self.ctx.pipeline_name, *(x.headers.get(h.lower()) for h in self.options["scope_headers"])]
        if self.options["per_session"]:
            extra.append(x.session)
        return exact_key(x.request, extra=tuple(extra), body=x.body)

    async def run(self, x: Exchange) -> None:
        ev = x.stage_event
        if self.options["bypass"] or bypassed(x):
            ev.detail["result"] = "bypass"
            return
        key = self._key(x)
        if x.dry_run:                   # `lynkr explain`: the key, no lookup
            ev.detail.update(result="dry_run", key=key[:12])
            return
        x.vars["_exact_cache_key"] = key
        now = time.time()
        hit = self._entries.get(key)
        if hit is not None and hit[1] <= now:
            self._entries.pop(key)
            hit = None
        if hit is None and self.shared is not None:
            hit = await self.shared.get(key)         # another replica's answer
            if hit is not None:
                self._entries.put(key, (kept(hit[0]), hit[1]))
                ev.detail["tier"] = "shared"
        if hit is None:
            ev.detail["result"] = "miss"
            x.vars.setdefault("cache", "miss")
            return
        ev.detail["result"] = "hit"
        x.vars["cache"] = "exact"
        x.response = replay(orjson.loads(hit[0]), "exact")

    async def after(self, x: Exchange) -> None:
        resp = x.response
        if resp is not None and resp.source == "cache:exact":
            await record_saved(x)
            return
        key = x.vars.get("_exact_cache_key")
        if key is None or (resp is not None and resp.source.startswith("cache:")):
            return
        message = answer_of(x)
        why_not = storable(message, tool_use=self.options["tool_use"])
        if why_not:
            x.stage_event.detail["not_stored"] = why_not
            return
        now = time.time()
        expires = now + self.ttl
        blob = kept(orjson.dumps(message))
        evicted = self._entries.evicting_put(key, (blob, expires))
        x.stage_event.detail["stored"] = True
        if self.shared is not None and not await self.shared.put(key, blob, expires):
            x.stage_event.detail["shared"] = False
        if self.store is not None:
            self.store.put(id=f"exact:{self.id}:{key}", kind="exact", stage=self.id, scope=key, message=blob,
                           created=now, expires=expires)
            self.store.delete([f"exact:{self.id}:{k}" for k in evicted])

    async def aclose(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(None, store.release)

