"""memory: per-project long-term memory that never breaks the provider's prompt cache. Opt-in.

    - id: memory
      uses: memory
      with: {retrieval_limit: 5, surprise_threshold: 0.3, ttl: 7776000}

1. Scope: the project the client states (Claude Code's working directory, Codex's `<cwd>`), per
   client key's team (`share: team`, the default), per key (`share: key`) or for every key
   (`share: project`), and per tenant header; a request that states none is left alone
   (lynkr/memory/scope.py).
2. Recall: the newest user turn is embedded and the project's memories ranked by relevance,
   importance and recency; at most `retrieval_limit` relevant ones are appended to that turn —
   after the last cache breakpoint — and put back in the same place on every later turn of the
   session, so the prefix the provider cached repeats byte for byte (lynkr/memory/inject.py).
   Nothing is injected when nothing is relevant.
3. Learn: statements in user turns (and, with `from_answers`, the model's final answers) that
   match the rule set and pass the novelty test are stored (lynkr/memory/extract.py, store.py),
   after the response, off the request path.
4. Tools: `memory_search`, `memory_add`, `memory_forget` are offered to the model and answered by
   the proxy itself in every client protocol; the client never sees them (lynkr/memory/tools.py).

Memories are user data: the stage's telemetry holds counts and ids, never their text.
Place it after strip_tools (which would drop its tools) and before provider_call.
"""
from __future__ import annotations

import asyncio
from functools import partial

from lynkr.exchange import Exchange
from lynkr.kit.embed import EmbedderError, check_model_path, get_embedder
from lynkr.kit.session import Sessions, session_key
from lynkr.memory.bank import EMBED_POOL, Limits, MemoryBank
from lynkr.memory.extract import turn_text
from lynkr.memory.inject import Injected, apply, message_digest, render
from lynkr.memory.scope import owner_of, scope_of
from lynkr.memory.store import MemoryStore, close_memory, file_op, memory_path, open_memory
from lynkr.memory.tools import NAMES, TOOLS, memory_interceptor
from lynkr.stage import Stage


class MemoryStage(Stage):
    name = "memory"
    summary = "Per-project long-term memory: recalls facts stated in earlier sessions into the newest turn " \
              "(prefix-stable) and answers memory_search/add/forget itself. Opt-in."
    status = "beta"
    edits = "copy-on-write"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "retrieval_limit": {"type": "integer", "minimum": 0, "maximum": 50, "default": 5,
                                "description": "At most this many memories injected per turn (MEMORY_RETRIEVAL_LIMIT)."},
            "min_relevance": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.28,
                              "description": "Lowest relevance (0.75 cosine + 0.25 word overlap) a memory needs to be "
                                             "injected; tuned by benchmarks/memory_eval.py (docs/memory.md)."},
            "adaptive_bar": {"type": "boolean", "default": True,
                             "description": "A turn about the project's own ways needs less relevance, a question any "
                                            "developer might ask more, and near neighbours of the best memory come "
                                            "along (docs/memory.md#the-bar-moves-with-the-question); false: "
                                            "min_relevance for every turn."},
            "surprise_threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.3,
                                   "description": "A statement is novel when 1 - its best cosine to the project's "
                                                  "memories is at least this (MEMORY_SURPRISE_THRESHOLD)."},
            "ttl": {"type": "number", "exclusiveMinimum": 0, "default": 90 * 86400,
                    "description": "Seconds a memory is kept after it was last used (MEMORY_TTL)."},
            "max_per_project": {"type": "integer", "minimum": 1, "default": 1000,
                                "description": "Memories kept per project; the least important, least used go first."},
            "max_memories": {"type": "integer", "minimum": 1, "default": 50000,
                             "description": "Memories kept in all."},
            "max_chars": {"type": "integer", "minimum": 20, "maximum": 4000, "default": 500,
                          "description": "Longest memory, in characters (longer statements are cut, longer "
                                         "memory_add calls refused)."},
            "from_answers": {"type": "boolean", "default": False,
                             "description": "Also learn from the model's final answers (decisions it states)."},
            "tools": {"type": "boolean", "default": True,
                      "description": "Offer memory_search/add/forget to the model (when the request has tools)."},
            "project": {"type": ["string", "null"], "default": None,
                        "description": "One fixed project for every request (shares memories across working "
                                       "directories); default: the directory each client states."},
            "share": {"enum": ["team", "key", "project"], "default": "team",
                      "description": "With client keys (`keys:`): who shares a project's memories — the key's team "
                                     "(a key without one: the key alone), each key alone, or every key."},
            "scope_headers": {"type": "array", "items": {"type": "string"}, "default": ["x-lynkr-tenant"],
                              "description": "Request headers whose values partition memories (teams, keys)."},
            "sessions": {"type": "integer", "minimum": 1, "default": 4096,
                         "description": "How many sessions' injections are remembered (to repeat them)."},
            "path": {"type": ["string", "null"], "default": None,
                     "description": "The memory file; default <state_dir>/memory.duckdb (never the telemetry file)."},
            "model_path": {"type": ["string", "null"], "default": None,
                           "description": "Folder of the ONNX embedding model; default $LYNKR_EMBED_MODEL_PATH."},
        },
    }
    examples = ["- {id: memory, uses: memory, with: {retrieval_limit: 5}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        try:
            check_model_path(options["model_path"])
        except EmbedderError as e:
            raise ctx.error(f"memory: {e}", "model_path") from None
        o = options
        store_opts = dict(ttl=float(o["ttl"]), max_per_project=o["max_per_project"], max_memories=o["max_memories"],
                          surprise=float(o["surprise_threshold"]))
        self.limits = Limits(retrieval_limit=o["retrieval_limit"], min_relevance=float(o["min_relevance"]),
                             adaptive_bar=o["adaptive_bar"],
                             max_chars=o["max_chars"])
        # `lynkr replay` / `explain` run the stage for real on an in-memory store: nothing is written.
        path = None if ctx.dry_run else memory_path(ctx, options)
        self.memory_file = path         # the dashboard's memory panel reads and deletes here
        self.bank = None if ctx.dry_run else MemoryBank(open_memory(path, 384, **store_opts),
                                                        get_embedder(o["model_path"]), self.limits)
        self._store_opts = store_opts
        self.sessions: Sessions[Injected] = Sessions(o["sessions"], factory=Injected)

    def _bank(self) -> MemoryBank:
        if self.bank is None:       # dry run: the model is loaded on first use, never at validate
            self.bank = MemoryBank(MemoryStore(384, None, **self._store_opts),
                                   get_embedder(self.options["model_path"]), self.limits)
        return self.bank

    async def run(self, x: Exchange) -> None:
        ev = x.stage_event
        scope = scope_of(x.request, x.headers, tenant_headers=self.options["scope_headers"],
                         project=self.options["project"], owner=owner_of(x.vars, self.options["share"]))
        if scope is None:
            ev.detail["result"] = "no_project"
            return
        bank = self._bank()
        bank.store.maybe_reload()
        session = self.sessions.of(session_key(x))
        messages = x.request.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], dict) else None
        ask = turn_text(last) if last is not None and last.get("role") == "user" else ""
        index = len(messages) - 1
        if ask and index not in session.blocks:
            found = await asyncio.get_running_loop().run_in_executor(
                EMBED_POOL, partial(bank.recall, scope, ask, turn=True))
            fresh = [m for _rel, m in found if m.id not in session.shown]
            if fresh:
                session.blocks[index] = (message_digest(last), render(fresh))
                session.shown.update(m.id for m in fresh)
            ev.detail.update(considered=bank.store.count(scope), injected=[m.id for m in fresh])
        x.request = apply(x.request, session)
        ev.detail["turns_with_memory"] = len(session.blocks)
        if ask and message_digest(last) not in session.learned:
            # Learned once the answer succeeded (`after`): a failed request's retry is learned then.
            x.vars["_memory_learn"] = (scope, ask, session, message_digest(last))
            if x.dry_run:               # replay runs no `after`: learn now
                await self._learn(x, bank)
        if self.options["tools"] and x.request.get("tools"):
            tools = [t for t in x.request["tools"] if not (isinstance(t, dict) and t.get("name") in NAMES)]
            x.request = {**x.request, "tools": tools + TOOLS}
            x.interceptors.append(memory_interceptor(bank, scope))

    async def _learn(self, x: Exchange, bank: MemoryBank) -> None:
        pending = x.vars.pop("_memory_learn", None)
        if pending is None:
            return
        scope, ask, session, digest = pending
        session.learned.add(digest)
        outcomes = await asyncio.get_running_loop().run_in_executor(EMBED_POOL, bank.learn, scope, ask, "user")
        if self.options["from_answers"]:
            answer = (x.response.final or x.response.message) if x.response is not None else None
            if answer and answer.get("stop_reason") != "tool_use":
                outcomes += await asyncio.get_running_loop().run_in_executor(
                    EMBED_POOL, bank.learn, scope, turn_text(answer), "answer")
        stored = [m.id for o, m in outcomes if o in ("added", "updated")]
        if outcomes:
            x.stage_event.detail.update(candidates=len(outcomes), stored=stored)

    async def after(self, x: Exchange) -> None:
        if self.bank is not None and x.response is not None and x.response.ok:
            await self._learn(x, self.bank)

    # -- the dashboard's memory panel (lynkr/server/dashboard.py finds a stage by `memory_file`) ----
    def memories(self, project: str | None = None) -> list[dict]:
        """The file's memories (of `project`, or all), without vectors. Blocking: call in a thread."""
        return file_op(self.memory_file, "project = ?" if project else "true", [project] if project else [])

    def forget(self, mid: str) -> bool:
        """An admin's delete, in whichever project holds `mid`. Blocking: call in a thread."""
        gone = file_op(self.memory_file, "id = ?", [mid], delete=True)
        if self.bank is not None:
            self.bank.store.forget_ids([mid])
        return bool(gone)

    async def aclose(self) -> None:
        bank, self.bank = self.bank, None
        if bank is not None and bank.store.path:
            await asyncio.get_running_loop().run_in_executor(None, close_memory, bank.store)
