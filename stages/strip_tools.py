"""strip_tools: send only the tool definitions this conversation can need, and minify their schemas.

    - id: tools
      uses: strip_tools
      with: {keep: [Bash, Read, Edit, Write, Grep, Glob]}

A tool is kept when any of these holds:
- the conversation already called it, or `tool_choice` names it, or the pipeline lists it in `keep:`;
- it is how the client discovers tools (Claude Code's `ToolSearch`, tools marked `defer_loading`),
  a server tool without an input schema (web search), or it carries a `cache_control` breakpoint;
- something the user typed in this conversation names it or echoes its description (rapidfuzz; and
  cosine similarity with the shared embedder when `embed_threshold` is set).

The kept set is session-stable: every rule above looks at the whole history, which only grows, and
the set is also remembered per session, so a tool once sent is sent on every later turn (the tools
sit at the very start of the provider's prompt cache). Tools keep the client's order.

Minification is lossless: `$schema`, property titles that only repeat the property name and
property descriptions that repeat the tool's description go; `properties`, `required`, `enum`,
`anyOf`, defaults and every other keyword stay.
"""
from __future__ import annotations

import asyncio
import os

from lynkr.exchange import Exchange
from lynkr.kit.session import Sessions, session_key
from lynkr.savings.payloads import user_texts
from lynkr.savings.tools import ToolList, ToolReader, called_tools
from lynkr.stage import Stage


class StripTools(Stage):
    name = "strip_tools"
    edits = "copy-on-write"
    summary = "Drops tool definitions the conversation cannot need (session-stable) and minifies schemas losslessly."
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "keep": {"type": "array", "items": {"type": "string"}, "default": [],
                     "description": "tool names always sent (the client's core tools)"},
            "min_tools": {"type": "integer", "minimum": 0, "default": 4,
                          "description": "requests with this many tools or fewer are left alone"},
            "name_cutoff": {"type": "number", "minimum": 0, "maximum": 100, "default": 85,
                            "description": "rapidfuzz ratio at which a word the user typed matches a part of a tool's name"},
            "description_hits": {"type": "integer", "minimum": 1, "default": 2,
                                 "description": "keywords of a tool's first description sentence the user must echo to keep it"},
            "embed_threshold": {"type": ["number", "null"], "default": None,
                                "description": "also keep tools whose name+description embedding has at least this "
                                               "cosine with the user's text (null: embedder off)"},
            "model_path": {"type": ["string", "null"], "default": None,
                           "description": "embedding model folder (defaults to $LYNKR_EMBED_MODEL_PATH)"},
            "minify": {"type": "boolean", "default": True,
                       "description": "minify tool schemas losslessly ($schema, repeated titles and descriptions)"},
            "strip": {"type": "boolean", "default": True,
                      "description": "drop tools; false only minifies"},
            "sessions": {"type": "integer", "minimum": 1, "default": 4096,
                         "description": "how many sessions' kept sets are remembered"},
        },
    }
    examples = ["- {id: tools, uses: strip_tools, with: {keep: [Bash, Read, Edit, Write]}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.keep = set(options["keep"])
        self.kept_by_session: Sessions[frozenset] = Sessions(options["sessions"])
        self.reader = ToolReader(name_cutoff=options["name_cutoff"], description_hits=options["description_hits"])
        self.embedder = None
        if options["embed_threshold"] is not None and not ctx.dry_run:
            from lynkr.kit.embed import get_embedder
            path = options["model_path"] or os.environ.get("LYNKR_EMBED_MODEL_PATH") or None
            self.embedder = get_embedder(model_path=path)
        self._tool_vecs: dict[str, object] = {}

    async def run(self, x: Exchange) -> None:
        tools = x.request.get("tools")
        ev = x.stage_event
        if not isinstance(tools, list) or not tools:
            return
        facts = self.reader.tool_list(tools, x.body)
        sent = range(len(tools))
        if self.options["strip"] and len(tools) > self.options["min_tools"]:
            sent = await self._strip(x, tools, facts, ev)
        minify = self.options["minify"]
        if minify:
            for new, raw in facts.minified:
                x.body.remember(new, raw)
            out = [facts.small[i] or tools[i] for i in sent]
        else:
            out = [tools[i] for i in sent]
        if len(out) != len(tools) or any(a is not b for a, b in zip(out, tools)):
            x.request = {**x.request, "tools": out}
            ev.measure = facts.measure(tuple(sent), minify)
        ev.detail.update({"tools_in": len(tools), "tools_out": len(out)})

    async def _strip(self, x: Exchange, tools: list, facts: "ToolList", ev) -> list[int]:
        """The positions of the tools to send."""
        keep = self.keep | called_tools(x.request)
        choice = x.request.get("tool_choice")
        key = session_key(x)
        keep |= self.kept_by_session.get(key) or frozenset()
        texts = user_texts(x.request)
        candidates = [t for t in facts.optional if t["name"] not in keep]
        reasons = {}
        for t in candidates:
            if self.reader.relevant(t, texts):
                keep.add(t["name"])
                reasons[t["name"]] = "words"
        if self.embedder is not None and texts:
            rest = [t for t in candidates if t["name"] not in keep]
            if rest:
                for name in await asyncio.to_thread(self._embed_relevant, rest, texts):
                    keep.add(name)
                    reasons[name] = "embedding"
        optional = facts.optional_at
        sent = [i for i in range(len(tools)) if i not in optional or optional[i] in keep]
        if not sent and isinstance(choice, dict) and choice.get("type") == "any":
            sent = list(range(len(tools)))       # `any` needs something to call
        names = facts.names
        self.kept_by_session.set(key, frozenset(names[i] for i in sent if names[i]))
        if len(sent) < len(tools):
            chosen = set(sent)
            ev.detail["dropped"] = sorted(n for i, n in enumerate(names) if n and i not in chosen)
        else:
            ev.detail["dropped"] = []
        if reasons:
            ev.detail["kept_for"] = reasons
        return sent

    def _embed_relevant(self, tools: list[dict], texts: list[str]) -> set[str]:
        import numpy as np
        missing = [t for t in tools if t["name"] not in self._tool_vecs]
        if missing:
            vecs = self.embedder.embed([f"{t['name']}: {(t.get('description') or '')[:300]}" for t in missing])
            for t, v in zip(missing, vecs):
                self._tool_vecs[t["name"]] = v
        q = self.embedder.embed([t[-2000:] for t in texts])
        out = set()
        for t in tools:
            if float(np.max(q @ self._tool_vecs[t["name"]])) >= self.options["embed_threshold"]:
                out.add(t["name"])
        return out
