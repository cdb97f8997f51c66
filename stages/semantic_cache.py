"""semantic_cache: a question asked again in other words gets the stored answer — unless the
words that differ change the answer.

    - id: cache
      uses: semantic_cache
      with: {threshold: 0.7, general_threshold: 0.95, ttl: 86400}

1. Only where a cached answer can be right: no tool calls or results in the conversation, at
   most `max_turns` user turns, no prefill, no attachments.
2. The question (the last user message's own text, without `<system-reminder>` blocks: the rest
   is in the scope key) is embedded with all-MiniLM-L6-v2 (lynkr/kit/embed.py; its first
   `embed_tokens` tokens — the guard reads all of it) on the stage's one embedding thread, never
   on the event loop; the model runs on one core, so `--workers N` uses N cores at most. Only
   when a lookup could hit: a question is embedded when its scope holds an answer to a question
   with the same guard signature (numbers, code, paths, quantifiers, … that any hit must share:
   lynkr/cache/guard.py), and a stored answer waits unembedded until such a question arrives.
3. Candidates come from the request's scope only: pipeline, model, the system prompt, tools and
   earlier turns (dates, git status and request ids normalised away), and the session or chosen
   headers when `per_session`/`scope_headers` say so. Two repositories never share answers.
4. A candidate over `threshold` (`general_threshold` when neither question names a tool, language,
   platform, identifier or path) must pass the guard (lynkr/cache/guard.py): every token of one
   question matched by the other, by kind (numbers, code, paths, tools, platforms, negations,
   quantifiers, positions, direction, names, words), and no relation swapped. A refusal is
   recorded with its rule and tokens ("quantifier: all ≠ any"), which `lynkr explain` shows.
5. A hit answers with `x-lynkr-cache: semantic` and `x-lynkr-cache-similarity`; the `after` hook
   stores complete, successful, tool-free answers. Entries live in memory (a matrix per scope,
   TTL, size bound) and in `<state_dir>/cache.duckdb`, so a restart keeps them.

With `state: {redis: URL}` the entries are shared by every replica (lynkr/cache/shared.py): each
one appends what it stores to a Redis stream, and an eligible lookup first takes in what the others
appended since its last one (one XREAD), so the index stays local and in process (Redis 7 without
modules has no vector search) and the guard still runs here. Redis unavailable: local only.

Fails open: an embedding error is a recorded miss, never a failed request.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lynkr.cache import guard
from lynkr.cache.decide import DEFAULT_GENERAL_THRESHOLD, DEFAULT_THRESHOLD, refusal_reason
from lynkr.cache.index import Entry, VectorIndex
from lynkr.cache.answers import answer_of, bypassed, record_saved, replay, storable
from lynkr.cache.scope import eligibility, scope_key, split_prompt
from lynkr.cache.shared import SharedEntries
from lynkr.storage.cache_store import cache_path, open_store
from lynkr.kit.embed import EmbedderError, check_model_path, get_embedder
from lynkr.exchange import Exchange
from lynkr.stage import Stage

# One embedding thread for the process: the model is single-threaded and locked anyway, and a
# dedicated thread keeps embeddings from queueing behind token counting in the default pool.
_EMBED_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lynkr-embed")


class SemanticCache(Stage):
    name = "semantic_cache"
    edits = "copy-on-write"
    summary = "Answers a rephrased question from a stored answer, guarded against near misses (numbers, names, opposites)."
    status = "beta"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": DEFAULT_THRESHOLD,
                          "description": "Lowest cosine similarity (all-MiniLM-L6-v2) for a candidate; the guard "
                                         "then accounts for every token. Chosen on ../shared/eval (docs/cache.md)."},
            "general_threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": DEFAULT_GENERAL_THRESHOLD,
                                  "description": "Lowest similarity when neither question names a tool, language, "
                                                 "platform, identifier or path (everyday questions: person, tense "
                                                 "and framing change answers the guard cannot see)."},
            "ttl": {"type": "number", "exclusiveMinimum": 0, "default": 86400,
                    "description": "Seconds a stored answer stays valid."},
            "model_path": {"type": ["string", "null"], "default": None,
                           "description": "Folder of the ONNX embedding model (fastembed specific_model_path); "
                                          "default $LYNKR_EMBED_MODEL_PATH, else fastembed downloads it."},
            "model": {"type": "string", "default": "sentence-transformers/all-MiniLM-L6-v2",
                      "description": "fastembed model name."},
            "max_turns": {"type": "integer", "minimum": 1, "default": 1,
                          "description": "Only requests with at most this many user turns; later turns depend "
                                         "on the conversation (which is part of the scope anyway)."},
            "embed_tokens": {"type": "integer", "minimum": 8, "maximum": 512, "default": 128,
                             "description": "Tokens of the question embedded (the model's cost grows with each); "
                                            "the guard still compares the whole question."},
            "max_chars": {"type": "integer", "minimum": 1, "default": 2000,
                          "description": "Longer questions are not looked up: they are tasks, not questions."},
            "max_entries": {"type": "integer", "minimum": 1, "default": 10000,
                            "description": "Answers kept in memory over all scopes; the oldest go first."},
            "max_per_scope": {"type": "integer", "minimum": 1, "default": 2000,
                              "description": "Answers kept per scope."},
            "per_session": {"type": "boolean", "default": False,
                            "description": "Partition by the client's session (answers never cross sessions)."},
            "scope_headers": {"type": "array", "items": {"type": "string"}, "default": ["x-lynkr-tenant"],
                              "description": "Request headers whose values partition the cache (tenants, projects)."},
            "guard": {"type": "boolean", "default": True,
                      "description": "Check what differs between the question and a candidate (turn off only to measure)."},
            "persist": {"type": "boolean", "default": True,
                        "description": "Keep answers in the cache file so a restart keeps them."},
            "path": {"type": ["string", "null"], "default": None,
                     "description": "The cache file; default <state_dir>/cache.duckdb (never the telemetry file)."},
            "bypass": {"type": "boolean", "default": False,
                       "description": "Skip lookups and stores (requests can also send `x-lynkr-cache: bypass`)."},
        },
    }
    examples = ["- {id: cache, uses: semantic_cache, with: {threshold: 0.7, ttl: 86400}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.threshold = float(options["threshold"])
        self.general_threshold = max(self.threshold, float(options["general_threshold"]))
        self.ttl = float(options["ttl"])
        self.store = None
        try:
            if ctx.dry_run:
                # `lynkr validate`/`explain`: check the model folder, load nothing, download nothing.
                check_model_path(options.get("model_path"))
                self.embedder = None
            else:
                self.embedder = get_embedder(options.get("model_path"), options["model"])
        except EmbedderError as e:
            key = "model_path" if options.get("model_path") else "model"
            raise ctx.cfg.error(f"semantic_cache: {e}", ("stages", ctx.index, "with", key)) from None
        self.index = VectorIndex(self.embedder.dim if self.embedder is not None else 384,
                                 max_entries=options["max_entries"], max_per_scope=options["max_per_scope"])
        self.shared = None
        state = ctx.shared.get("state")
        if state is not None and not ctx.dry_run:
            self.shared = SharedEntries(state, ctx.pipeline_name, self.id, ttl=self.ttl, max_entries=options["max_entries"],
                                        dim=self.index.dim, take=self._take_shared)
            state.on_up.append(self.shared.forget_position)
        if options["persist"] and not ctx.dry_run:
            self.store = open_store(cache_path(ctx, options))
            self.index.load([
                (Entry(id=row["id"], scope=row["scope"], text=row["text"] or "", message=row["message"],
                       created=row["created"], expires=row["expires"], key=guard.signature(row["text"] or "")),
                 None if row["vector"] is None else np.asarray(row["vector"], dtype=np.float32))
                for row in self.store.load("semantic", self.id)
                if row["vector"] is None or len(row["vector"]) == self.embedder.dim])

    def _embed(self, question: str):
        return self.embedder.embed([question], max_tokens=self.options["embed_tokens"])[0]

    def _prepare(self, question: str, waiting: list[Entry]):
        """In the embedding thread: the question's vector, and those of the stored answers that
        waited for a question like it (one batch), so the event loop only multiplies and compares."""
        vectors = self.embedder.embed([question] + [e.text for e in waiting], max_tokens=self.options["embed_tokens"])
        return vectors[0], vectors[1:]

    # -- request phase ------------------------------------------------------------------------
    async def run(self, x: Exchange) -> None:
        ev = x.event(self.id)
        if self.options["bypass"] or bypassed(x):
            ev.detail["result"] = "bypass"
            return
        why_not = eligibility(x.request, self.options["max_turns"])
        question, context = split_prompt(x.request) if why_not is None else ("", [])
        if why_not is None and not question:
            why_not = "no_question"
        if why_not is None and len(question) > self.options["max_chars"]:
            why_not = "too_long"
        if why_not is not None:
            ev.detail["result"] = "skip"
            ev.detail["reason"] = why_not
            return
        if x.dry_run:                   # `lynkr explain`: what would be looked up and how the guard reads it
            ev.detail.update(result="dry_run", question=question[:120], guard_reads=guard.summary(question),
                             threshold=self.threshold if guard.technical(question) else self.general_threshold)
            return
        scope = scope_key(x, x.request, context, pipeline=self.ctx.pipeline_name, model=x.request.get("model"),
                          per_session=self.options["per_session"], headers=self.options["scope_headers"])
        key = guard.signature(question) if self.options["guard"] else ""
        x.vars["_semantic_cache"] = (scope, question, None, key)     # for `after`, which stores the answer
        if self.shared is not None:
            await self.shared.refresh()        # what the other replicas stored since the last lookup
        waiting = self.index.waiting(scope, key)
        if not waiting and not self.index.holds(scope, key):
            # No stored question shares what a hit must share: nothing to embed or compare.
            ev.detail.update(result="miss", reason="no_candidate")
            x.vars.setdefault("cache", "miss")
            return
        try:
            vector, vectors = await asyncio.get_running_loop().run_in_executor(
                _EMBED_POOL, self._prepare, question, waiting)
        except Exception as e:
            for entry in waiting:          # back to waiting: a later question may embed them
                self.index.add(entry, None)
            # Fail open: the executor records the stage as failed_open and the request goes on.
            ev.detail.update(result="error", error=f"embedding failed: {type(e).__name__}: {e}")
            x.vars.setdefault("cache", "miss")
            raise
        for entry, vec in zip(waiting, vectors):
            self._keep(entry, vec)
        x.vars["_semantic_cache"] = (scope, question, vector, key)
        candidates = self.index.search(scope, vector, threshold=self.threshold)
        rejected = []
        for sim, entry in candidates:
            reason = refusal_reason(question, entry.text, sim, self.threshold, self.general_threshold, self.options["guard"])
            if reason is not None:
                rejected.append({"similarity": round(sim, 4), "reason": reason})
                continue
            entry.hits += 1
            ev.detail.update(result="hit", similarity=round(sim, 4), entry=entry.id)
            if rejected:
                ev.detail["rejected"] = rejected
            x.vars["cache"] = "semantic"
            x.vars["cache_similarity"] = round(sim, 4)
            x.response = replay(entry.message, "semantic", {"x-lynkr-cache-similarity": f"{sim:.4f}"})
            return
        ev.detail["result"] = "reject" if rejected else "miss"
        if rejected:
            ev.detail["rejected"] = rejected
        if candidates:
            ev.detail["best"] = round(candidates[0][0], 4)
        x.vars.setdefault("cache", "miss")

    # -- response phase -----------------------------------------------------------------------
    async def after(self, x: Exchange) -> None:
        resp = x.response
        if resp is not None and resp.source == "cache:semantic" and x.vars.get("cache") == "semantic":
            await record_saved(x, self.id)
            return
        pending = x.vars.get("_semantic_cache")
        if pending is None or self.options["bypass"] or (resp is not None and resp.source.startswith("cache:")):
            return
        message = answer_of(x)
        why_not = storable(message, tool_use=False)
        ev = x.event(self.id)
        if why_not:
            ev.detail["not_stored"] = why_not
            return
        scope, question, vector, key = pending
        now = time.time()
        entry = Entry(id=f"semantic:{self.id}:{uuid.uuid4().hex}", scope=scope, text=question, message=message,
                      created=now, expires=now + self.ttl, key=key)
        # Without a vector (no stored question shared its key) the answer waits, unembedded.
        self._keep(entry, vector)
        ev.detail["stored"] = True
        if self.shared is not None and not await self.shared.publish(entry, vector):
            ev.detail["shared"] = False
        gone = self.index.sweep(now)
        if self.store is not None and gone:
            self.store.delete([e.id for e in gone])

    def _keep(self, entry: Entry, vector) -> None:
        evicted = self.index.add(entry, vector)
        if self.store is not None:
            self.store.put(id=entry.id, kind="semantic", stage=self.id, scope=entry.scope, text=entry.text,
                           vector=vector, message=entry.message, created=entry.created, expires=entry.expires)
            self.store.delete([e.id for e in evicted if e.id != entry.id])

    def _take_shared(self, found: list) -> None:
        """Entries other replicas stored: into the index like local ones (those without a vector
        wait under their guard key). Not written to the local file: Redis keeps them."""
        for fields, vector in found:
            entry = Entry(**fields)
            evicted = self.index.add(entry, vector)
            if self.store is not None and evicted:
                self.store.delete([e.id for e in evicted if e.id != entry.id])

    async def aclose(self) -> None:
        if self.shared is not None:
            with contextlib.suppress(ValueError):
                self.shared.state.on_up.remove(self.shared.forget_position)
        store, self.store = self.store, None
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(None, store.release)
