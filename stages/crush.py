"""crush: shorten large tool results to what carries information; the rest stays retrievable (opt-in).

    - id: crush
      uses: crush
      with: {keep_last: 2, min_tokens: 400}

What it keeps (lynkr/savings/crush.py)
- JSON rows (search results, listings, diagnostics), whatever their field names: constant columns
  and columns that are another column in a fixed frame are stated once; context that contains the
  row's match is left out; paths, line numbers, matched text, ids and names stay verbatim.
- Long text: first and last lines, errors and failures with their neighbours, lines with the
  user's words; other runs become "… N lines elided …".

What it never loses
The crushed text starts with `[lynkr crush <handle>: …]` saying what was left out; the original goes
to the crush store, the request gets the `lynkr_expand` tool, and when the model calls it the proxy
answers from the store and continues the turn (lynkr/savings/expand.py) — the client never sees the call.
A result is crushed only when that saves at least `min_saving` of its tokens.

Prefix stability
A tool result's fate is decided once per session, the first time the proxy sees it, and replayed on
every later turn: a result sent in full stays in full, a crushed one gets the same bytes. So with
`keep_last: N` a result is crushed when it first arrives already older than the newest N results
(a resumed session, a restarted proxy), or — after `recrush_after_idle` seconds without requests in
the session, when the provider's prompt cache has expired anyway — once it has aged past them.
`keep_last: 0` crushes results as they arrive (the model can still expand them): that is what
saves the most in a live session.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from lynkr.exchange import Exchange
from lynkr.kit.session import Sessions, session_key
from lynkr.kit.tokens import warm
from lynkr.savings.crush import ask_words, crush_text
from lynkr.savings.expand import EXPAND_NAME, EXPAND_TOOL, CrushStore, expand_interceptor
from lynkr.savings.payloads import replace_payloads, tool_results
from lynkr.stage import Stage

__all__ = ["Crush", "crush_text"]


class _Session:
    """What crush remembers of a session between turns."""
    __slots__ = ("fate", "expand", "last")

    def __init__(self):
        self.fate: dict[str, str | None] = {}   # payload key -> crushed text, or None: sent in full
        self.expand = False                     # lynkr_expand was added: keep adding it
        self.last = 0.0


class Crush(Stage):
    name = "crush"
    edits = "copy-on-write"
    summary = "Shortens large tool results (JSON rows, logs, test output) to what carries information; " \
              "the rest is retrievable through lynkr_expand. Opt-in."
    status = "beta"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "keep_last": {"type": "integer", "minimum": 0, "default": 2,
                          "description": "the newest N tool results are never crushed when first seen"},
            "min_tokens": {"type": "integer", "minimum": 0, "default": 400,
                           "description": "tool results under this many tokens are left alone"},
            "min_saving": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.3,
                           "description": "crush only when it saves at least this share of the result's tokens"},
            "max_rows": {"type": "integer", "minimum": 3, "default": 80,
                         "description": "JSON arrays longer than this keep only their informative rows"},
            "min_lines": {"type": "integer", "minimum": 10, "default": 40,
                          "description": "text shorter than this many lines is left alone"},
            "max_chars": {"type": "integer", "minimum": 1, "default": 2_000_000,
                          "description": "results longer than this are left alone (bounded CPU per request)"},
            "keep_words": {"type": "array", "items": {"type": "string"}, "default": [],
                           "description": "lines/rows containing these words are always kept"},
            "recrush_after_idle": {"type": ["number", "null"], "default": 300,
                                   "description": "seconds without requests in a session after which results "
                                                  "sent in full may be crushed (the prompt cache has expired); null: never"},
            "store_dir": {"type": ["string", "null"], "default": None,
                          "description": "where originals are kept for lynkr_expand (default <state_dir>/crush)"},
            "sessions": {"type": "integer", "minimum": 1, "default": 4096,
                         "description": "how many sessions' decisions are remembered"},
            "expand_tool": {"enum": ["always", "once_crushed"], "default": "always",
                            "description": "add lynkr_expand to every request (the tools prefix never changes) or "
                                           "only from a session's first crush on (saves ~80 tokens a request, "
                                           "costs one prompt-cache miss per session)"},
        },
    }
    examples = ["- {id: crush, uses: crush, with: {keep_last: 2, min_tokens: 400}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        directory = None if ctx.dry_run else (options["store_dir"] or str(Path(ctx.state_dir) / "crush"))
        self.store = CrushStore(directory)
        self.hook = expand_interceptor(self.store)
        self.sessions: Sessions[_Session] = Sessions(options["sessions"], factory=_Session)
        if not ctx.dry_run:
            warm()          # load cl100k_base now, not inside the first request that needs it

    def _crush(self, text: str, words: set[str]):
        o = self.options
        out, reason, handle = crush_text(text, words, min_tokens=o["min_tokens"], min_saving=o["min_saving"],
                                         max_rows=o["max_rows"], min_lines=o["min_lines"], max_chars=o["max_chars"])
        if out is not None:
            self.store.put(text)
        return out, reason

    def _decide(self, todo: list, words: set[str]) -> list:
        return [self._crush(p.text, words) for p in todo]

    async def run(self, x: Exchange) -> None:
        ev = x.event(self.id)
        session = self.sessions.of(session_key(x))
        now = time.time()
        idle = self.options["recrush_after_idle"]
        revisit = bool(session.last) and idle is not None and now - session.last > idle
        session.last = now
        payloads = list(tool_results(x.request))
        order = list(dict.fromkeys(p.tool_use_id for p in payloads))      # tool results, oldest first
        recent = set(order[len(order) - self.options["keep_last"]:]) if self.options["keep_last"] else set()
        changed, todo, reasons = {}, [], {}
        for p in payloads:
            # Which result, and which version of it: a client that edits a result gets a new decision.
            where = p.tool_use_id or f"m{p.msg}b{p.block}"
            key = f"{where}:{p.inner}:{len(p.text)}:{hash(p.text)}"
            if key in session.fate and not (revisit and session.fate[key] is None and p.tool_use_id not in recent):
                if session.fate[key] is not None:
                    changed[(p.msg, p.block, p.inner)] = session.fate[key]
                continue
            if p.tool_use_id in recent:
                session.fate[key] = None
                reasons["recent"] = reasons.get("recent", 0) + 1
                continue
            todo.append((key, p))
        if todo:
            words = ask_words(x.request, self.options["keep_words"])
            # Parsing, counting and writing originals to the store: off the event loop.
            done = await asyncio.to_thread(self._decide, [p for _, p in todo], words)
            for (key, p), (out, reason) in zip(todo, done):
                session.fate[key] = out
                reasons[reason] = reasons.get(reason, 0) + 1
                if out is not None:
                    changed[(p.msg, p.block, p.inner)] = out
        if changed:
            x.request = replace_payloads(x.request, changed)
            session.expand = True
        if self.options["expand_tool"] == "always" and x.request.get("tools"):
            session.expand = True
        if session.expand:
            tools = list(x.request.get("tools") or [])
            if not any(isinstance(t, dict) and t.get("name") == EXPAND_NAME for t in tools):
                x.request = {**x.request, "tools": tools + [EXPAND_TOOL]}
            x.interceptors.append(self.hook)
        if ev is not None:
            ev.detail.update({"payloads": len(payloads), "crushed": len(changed), "decided": reasons})
            if changed:
                index = {(p.msg, p.block, p.inner): p.text for p in payloads}
                ev.measure = ("\n".join(index[k] for k in changed), "\n".join(changed.values()))
