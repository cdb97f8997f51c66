"""Which tool definitions a conversation can need, and each tool's schema minified losslessly (the
`strip_tools` stage's algorithm).

A tool is needed when the conversation called it or `tool_choice` names it, when it is how the
client discovers tools (Claude Code's `ToolSearch`, `defer_loading`), a server tool, or carries a
`cache_control` breakpoint (`always_kept`), or when something the user typed names it or echoes its
description (`ToolReader.relevant`: rapidfuzz over the words of each user text). Minification drops
`$schema`, property titles that only repeat the property name and property descriptions that repeat
the tool's description; every other keyword stays.

An agent sends the same tool list and the same user texts every turn, so a `ToolReader` remembers
(in `lynkr.kit.cache.Bounded` tables) each text's words and what they match, each tool's minified
form and JSON, and each list's facts (`ToolList`), by their JSON.
"""
from __future__ import annotations

import re

import orjson
from rapidfuzz import fuzz, process

from lynkr.body import Body
from lynkr.kit.cache import Bounded, remembered
from lynkr.kit.heap import kept

__all__ = ["ToolReader", "ToolList", "minify_tool", "always_kept", "called_tools", "name_parts",
           "description_keywords"]

_DISCOVERY = {"toolsearch", "tool_search", "search_tools"}
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{2,}")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Words that appear in most tool descriptions and say nothing about which tool is meant.
_STOP = frozenset("""the and for with from this that these those when what which will your you use used using
    into only also then than them they their there here have has been being each other more most must
    should would could can call calls called tool tools file files return returns value values input
    output string number boolean object array default true false optional required make sure before after
    about after again over under between without within while where does done just like such some any
    every need needs want wants able first last next same new run runs running text""".split())


@remembered(max_entries=4096)      # the same tools arrive with every request
def name_parts(name: str) -> tuple[str, ...]:
    parts = []
    for chunk in re.split(r"[_\-\s.]+", name):
        parts += [p.lower() for p in _CAMEL.findall(chunk)]
    return tuple(p for p in parts if len(p) >= 4 and p not in _STOP)


@remembered(max_entries=4096)
def description_keywords(description: str, limit: int = 12) -> tuple[str, ...]:
    first = re.split(r"(?<=[.!?])\s|\n\n", description.strip(), maxsplit=1)[0][:200]
    seen, out = set(), []
    for w in _WORD.findall(first):
        w = w.lower()
        if len(w) >= 5 and w not in _STOP and w not in seen:
            seen.add(w)
            out.append(w)
    return tuple(out[:limit])


def _fuzzy_in(word: str, words, cutoff: float) -> bool:
    """`word` is in `words` or within `cutoff` (fuzz.ratio) of one at most 2 characters longer or
    shorter. `words` may be a _Words (grouped by length, compared in rapidfuzz's C loop)."""
    if word in words:
        return True
    if isinstance(words, _Words):
        n = len(word)
        near = [w for k in range(n - 2, n + 3) for w in words.by_len.get(k, ())]
        return bool(near) and process.extractOne(word, near, scorer=fuzz.ratio, score_cutoff=cutoff) is not None
    return any(abs(len(w) - len(word)) <= 2 and fuzz.ratio(word, w) >= cutoff for w in words)


class _Words(set):
    """The words of a request's user texts, also grouped by length for _fuzzy_in."""

    def __init__(self, words):
        super().__init__(words)
        self.by_len: dict[int, list[str]] = {}
        for w in self:
            self.by_len.setdefault(len(w), []).append(w)


class _TextFacts:
    """The words of a user text, and per tool (name, description) what they match."""

    __slots__ = ("words", "matches")

    def __init__(self, words):
        self.words = _Words(words)
        self.matches: dict[tuple, object] = {}


def minify_tool(tool: dict) -> dict:
    """A tool with its schema minified losslessly (the same object when nothing changes)."""
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        return tool
    desc = (tool.get("description") or "").strip()
    new = _minify_schema(schema, desc, top=True)
    return tool if new is schema else {**tool, "input_schema": new}


def _minify_schema(schema: dict, tool_desc: str, top: bool = False) -> dict:
    out = schema
    if top and "$schema" in out:
        out = {k: v for k, v in out.items() if k != "$schema"}
    props = out.get("properties")
    if isinstance(props, dict):
        new_props = {}
        changed = False
        for pname, pschema in props.items():
            if not isinstance(pschema, dict):
                new_props[pname] = pschema
                continue
            p = pschema
            title = p.get("title")
            if isinstance(title, str) and _norm(title) == _norm(pname):
                p = {k: v for k, v in p.items() if k != "title"}
            d = p.get("description")
            if isinstance(d, str) and tool_desc and d.strip() == tool_desc:
                p = {k: v for k, v in p.items() if k != "description"}
            p2 = _minify_schema(p, tool_desc)
            changed |= p2 is not pschema
            new_props[pname] = p2
        if changed:
            out = {**out, "properties": new_props}
    items = out.get("items")
    if isinstance(items, dict):
        new_items = _minify_schema(items, tool_desc)
        if new_items is not items:
            out = {**out, "items": new_items}
    return out


def _norm(s: str) -> str:
    return re.sub(r"[\s_\-]+", "", s).lower()


def always_kept(tool: dict) -> bool:
    name = str(tool.get("name") or "")
    if name.lower() in _DISCOVERY or tool.get("defer_loading"):
        return True
    if "input_schema" not in tool or (tool.get("type") not in (None, "custom")):
        return True                 # server tools (web_search, code execution): defined by the provider
    return "cache_control" in tool


def called_tools(request: dict) -> set[str]:
    """The tools the conversation already called, and the one `tool_choice` names."""
    names: set[str] = set()
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("name"):
        names.add(choice["name"])
    for msg in request.get("messages") or ():
        if isinstance(msg, dict) and msg.get("role") == "assistant" and isinstance(msg.get("content"), list):
            names.update(b.get("name") for b in msg["content"]
                         if isinstance(b, dict) and b.get("type") in ("tool_use", "server_tool_use"))
    return names


class ToolReader:
    """What the tool lists and user texts seen so far say, remembered by their JSON and text."""

    def __init__(self, *, name_cutoff: float = 85, description_hits: int = 2):
        self.name_cutoff = name_cutoff
        self.description_hits = description_hits
        # Sizes are in bytes, roughly, entries' overhead included (every turn brings a new text).
        self._texts = Bounded(max_size=1_000_000)       # user text -> _TextFacts of its words
        self._facts = Bounded(max_size=1_000_000)       # a text's words -> _TextFacts
        self._tools = Bounded(max_size=2_000_000)       # a tool's JSON -> (minified tool or None, JSON, minified JSON)
        self._lists = Bounded(max_size=8_000_000)       # its tools' JSON -> a tool list's ToolList

    def relevant(self, tool: dict, texts: list[str]) -> bool:
        """Whether the user's words call for `tool`: its name, or `description_hits` keywords of its
        description, (fuzzily) among the words of `texts`. Each text's words and what they match
        are remembered by the text: an agent resends the same user texts every turn, so only a
        new one is read. A word is among the words of all texts exactly when it is among those of
        one text, so this is the same answer as reading their union."""
        name = str(tool.get("name") or "")
        desc = tool.get("description") or ""
        found: set[str] = set()
        for text in texts:
            hit = self._match(name, desc, text)
            if hit is True:
                return True
            found |= hit
        return len(found) >= self.description_hits

    def _match(self, name: str, desc: str, text: str):
        """True when `text` names the tool, else the description keywords it echoes."""
        facts = self._texts.get(text)
        if facts is None:
            # Texts with the same words share their facts ("(request 1)", "(request 2)").
            words = frozenset(w.lower() for w in _WORD.findall(text))
            facts = self._facts.get(words)
            if facts is None:
                facts = self._facts.put(words, _TextFacts(words), 50 * len(words) + 500)
            self._texts.put(text, facts, len(text) + 200)
        hit = facts.matches.get((name, desc))
        if hit is None:
            words = facts.words
            cut = self.name_cutoff
            if name.lower() in words or any(_fuzzy_in(p, words, cut) for p in name_parts(name)):
                hit = True
            else:
                hit = frozenset(k for k in description_keywords(desc) if _fuzzy_in(k, words, 90))
            facts.matches[(name, desc)] = hit
        return hit

    def minified(self, tool: dict, body: Body) -> tuple:
        """(the minified tool or None when minifying changes nothing, the tool's JSON, the JSON of
        what is sent, its bytes). Each tool's minified form and both JSON texts (for the token
        measure) are remembered by its JSON, and a minified tool is the same object every time.
        `body` (the exchange's, lynkr.body) shares the JSON with the exact cache before and
        tier_route after."""
        try:
            raw = body.json_of(tool)
        except TypeError:
            new = minify_tool(tool)
            return (None if new is tool else new), None, None, None
        hit = self._tools.get(raw)
        if hit is None:
            new = minify_tool(tool)
            text = raw.decode()
            raw = kept(raw)                 # remembered past the request (lynkr.kit.heap)
            if new is tool:
                hit = (None, text, text, raw)
            else:
                new_raw = kept(orjson.dumps(new))
                hit = (new, text, new_raw.decode(), new_raw)
            self._tools.put(raw, hit, 2 * len(raw) + 2 * len(hit[3]))
        return hit

    def tool_list(self, tools: list, body: Body) -> "ToolList":
        """The facts of a tool list, remembered by its tools' JSON: an agent sends the same list
        with every request, so a list is read tool by tool once (that was ~40 % of this stage on
        every request of a 62 KB Claude Code turn)."""
        try:
            key = tuple(body.json_of(t) if isinstance(t, dict) else None for t in tools)
        except TypeError:
            return ToolList(self, tools, body)         # not JSON (a library caller's object)
        facts = self._lists.get(key)
        if facts is None:
            # Sized for its JSON: the list's own, the minified tools' and a few joined lists. The
            # key keeps right-sized copies of the request's JSON (lynkr.kit.heap).
            size = (2 + ToolList.JOINED) * sum(len(raw) for raw in key if raw is not None)
            key = tuple(None if raw is None else kept(raw) for raw in key)
            facts = self._lists.put(key, ToolList(self, tools, body), size)
        return facts


class ToolList:
    """What a tool list says, read once per distinct list (by its tools' JSON): each tool's name,
    the ones sent only when the conversation calls for them, each tool's minified form, and the
    list's JSON before and after (the token measure), joined once per set of tools sent so the
    telemetry writer finds the same string, and its count, every time."""

    __slots__ = ("names", "optional", "optional_at", "small", "minified", "_texts", "_joined")
    JOINED = 8          # the sets of tools sent whose JSON is kept (sessions keep different sets)

    def __init__(self, reader: ToolReader, tools: list, body: Body):
        # A tool without a name (or with one that is not a string) is always sent.
        self.names = [t["name"] if isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"] else None
                      for t in tools]
        # Sent only when called for: named, and not always kept (discovery, server tools, cache
        # breakpoints). Only name and description are read from them (relevant, _embed_relevant).
        self.optional_at = {i: t["name"] for i, t in enumerate(tools)
                            if self.names[i] and not always_kept(t)}
        self.optional = [{"name": tools[i]["name"], "description": tools[i].get("description")}
                         for i in self.optional_at]
        got = [reader.minified(t, body) if isinstance(t, dict) else (None, None, None, None) for t in tools]
        self.small = [g[0] for g in got]                    # the minified tool, or None: sent as is
        self.minified = [(g[0], g[3]) for g in got if g[0] is not None and g[3] is not None]
        self._texts = [(g[1], g[2]) for g in got]
        self._joined: dict = {}

    def measure(self, sent: tuple, minify: bool) -> tuple[str, str] | None:
        """(the list's JSON as the client sent it, the JSON of the tools sent)."""
        got = self._joined.get((sent, minify))
        if got is None:
            texts = self._texts
            if any(a is None for a, _ in texts):
                return None                 # a tool that is not JSON: nothing to measure by
            before = self._joined.get("before")
            if before is None:
                before = self._joined["before"] = "[" + ",".join(a for a, _ in texts) + "]"
            after = "[" + ",".join(texts[i][1] if minify else texts[i][0] for i in sent) + "]"
            if len(self._joined) > self.JOINED:
                self._joined = {"before": before}
            got = self._joined[(sent, minify)] = (before, after)
        return got
