"""`memory_search`, `memory_add`, `memory_forget`: tools the `memory` stage offers the model and
the proxy answers itself (lynkr/wire/answered.py), scoped to the request's project. Bad input is a
tool error the model reads — a memory too long, too many adds in one turn, an id that is not this
project's — never an HTTP error.
"""
from __future__ import annotations

import asyncio
import datetime as dt

from lynkr.exchange import Exchange
from lynkr.wire.answered import answering, tool_error
from lynkr.memory.bank import EMBED_POOL, KINDS, MemoryBank, MemoryInputError
from lynkr.memory.scope import Scope

__all__ = ["TOOLS", "NAMES", "memory_interceptor", "MAX_ADDS_PER_TURN"]

MAX_ADDS_PER_TURN = 20
MAX_SEARCH = 20

TOOLS = [
    {"name": "memory_search",
     "description": "Searches this project's long-term memory (facts, decisions and preferences stated in earlier "
                    "sessions). Returns matching memories with their ids.",
     "input_schema": {"type": "object", "properties": {
         "query": {"type": "string", "description": "what to look for"},
         "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH, "description": "at most this many (default 5)"}},
         "required": ["query"]}},
    {"name": "memory_add",
     "description": "Saves one fact, decision or preference about this project for later sessions. Keep it to one "
                    "short self-contained sentence.",
     "input_schema": {"type": "object", "properties": {
         "content": {"type": "string", "description": "the sentence to remember (at most 500 characters)"},
         "kind": {"type": "string", "enum": list(KINDS)}},
         "required": ["content"]}},
    {"name": "memory_forget",
     "description": "Deletes a memory of this project that is wrong or outdated, by the id memory_search shows.",
     "input_schema": {"type": "object", "properties": {"id": {"type": "string", "description": "e.g. m_0123456789abcdef"}},
                      "required": ["id"]}},
]
NAMES = frozenset(t["name"] for t in TOOLS)


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d")


def _search(bank: MemoryBank, scope: Scope, args: dict) -> str:
    query = args.get("query")
    if not isinstance(query, str) or not query.strip():
        raise MemoryInputError("memory_search needs `query`: what to look for")
    limit = args.get("limit")
    limit = min(MAX_SEARCH, max(1, limit)) if isinstance(limit, int) else 5
    found = bank.recall(scope, query, limit=limit)
    if not found:
        return "No memory of this project matches."
    return "\n".join(f"[{m.id}] ({m.kind}, {_day(m.created)}) {m.text}" for _rel, m in found)


def _add(bank: MemoryBank, scope: Scope, args: dict) -> str:
    outcome, m = bank.remember(scope, args.get("content"), args.get("kind") or "note")
    return {"added": f"Saved as {m.id}.", "updated": f"Saved as {m.id} (it replaces an older memory about the same thing).",
            "duplicate": f"Already remembered as {m.id}.", "known": f"Already remembered as {m.id}."}[outcome]


def _forget(bank: MemoryBank, scope: Scope, args: dict) -> str:
    gone = bank.forget(scope, args.get("id"))
    return f"Forgot {gone.id}: {gone.text[:80]}"


_DO = {"memory_search": _search, "memory_add": _add, "memory_forget": _forget}


def memory_interceptor(bank: MemoryBank, scope: Scope):
    """The request's hook: answers the memory tools in `scope`."""
    adds = [0]

    async def answer(x: Exchange, block: dict) -> dict:
        name = block.get("name")
        args = block.get("input") if isinstance(block.get("input"), dict) else {}
        if name == "memory_add":
            adds[0] += 1
            if adds[0] > MAX_ADDS_PER_TURN:
                return tool_error(block, f"at most {MAX_ADDS_PER_TURN} memory_add calls in one turn; "
                                         "keep the most important facts")
        try:
            text = await asyncio.get_running_loop().run_in_executor(EMBED_POOL, _DO[name], bank, scope, args)
        except MemoryInputError as e:
            return tool_error(block, str(e))
        return {"type": "tool_result", "tool_use_id": block.get("id"), "content": text}

    return answering({n: answer for n in NAMES}, counter="memory_tool_calls")
