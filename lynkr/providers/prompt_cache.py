"""Provider prompt caching: which upstream honours which marker, where Lynkr adds breakpoints when
the client set none, and how a client's malformed `cache_control` is fixed (docs/providers.md,
"Prompt caching", has the same rules as a table).

    rules = rules_for(provider, model)                # CacheRules for this upstream and model
    request, note = prepare(request, rules, ttl=None) # canonical in, canonical out (copy-on-write)

Breakpoint policy (only when the request carries no `cache_control` at all; a client that placed
its own manages its cache and gets none added), in prefix order, at most `rules.max_points`:
1. the last tool definition (tools only change when the client's tool set does);
2. the last system block;
3. the last block of the user turn before the latest assistant turn — where the previous turn's
   breakpoint was, so a turn that appends more blocks than the provider's lookback (20 blocks
   for Anthropic) still finds the previous turn's cache entry;
4. the last cacheable block of the last message: next turn appends after it, so it is stable.
Text the proxy appended to a turn (the memory stage's block, lynkr/kit/harness.py:proxy_added) is
never marked: the breakpoint goes on the client's last block before it.
A point is placed only where the prefix up to it is at least the model's minimum cacheable
length (estimated from the JSON size, 4 bytes a token), so no marker is wasted on a prefix the
provider would not cache. Thinking blocks and empty text blocks never carry a marker.

Malformed client markers (the fix is recorded in provider_call's event detail):
- not an object, or a `type` other than "ephemeral": the marker is removed;
- a `ttl` other than "5m"/"1h" (not a duration the providers accept): the ttl is removed (5 minutes);
- `ttl: "1h"` to an upstream that rejects the field: the ttl is removed;
- a 1-hour marker after a 5-minute one (Anthropic rejects the order): its ttl is removed;
- more than `max_points` markers: the first `max_points - 1` and the last are kept.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlparse

import orjson

from lynkr.kit.harness import proxy_added

__all__ = ["CacheRules", "rules_for", "prepare", "count_points", "min_tokens_for", "session_cache_key"]

TTLS = ("5m", "1h")
_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})

# Minimum cacheable prompt per Claude model (Anthropic's prompt-caching docs; Bedrock uses the
# same numbers). The longest matching prefix wins; anything else is 1024.
_MIN_TOKENS = (("claude-opus-5", 512), ("claude-opus-4-5", 4096), ("claude-opus-4-6", 4096),
               ("claude-haiku-4-5", 4096), ("claude-sonnet-4-6", 2048), ("claude-3-5-haiku", 2048),
               ("claude-3-haiku", 2048), ("claude-haiku-3", 2048))


@dataclass(frozen=True)
class CacheRules:
    """What one upstream does with prompt-cache markers.

    markers: "cache_control" (Anthropic Messages blocks), "cachePoint" (Bedrock Converse),
             "parts" (cache_control on OpenAI-chat content parts: OpenRouter serving Claude/Gemini),
             "none" (markers are dropped in conversion; the provider caches prefixes by itself or not at all)
    ttl:     a 1-hour ttl is accepted
    cache_key: a `prompt_cache_key` is accepted (OpenAI, Azure OpenAI)
    """

    markers: str = "none"
    ttl: bool = False
    max_points: int = 4
    min_tokens: int = 1024
    cache_key: bool = False

    @property
    def explicit(self) -> bool:
        return self.markers != "none"


def min_tokens_for(model: str | None) -> int:
    from lynkr.kit.catalog import normalize
    name = normalize(model or "")
    return next((n for prefix, n in _MIN_TOKENS if name.startswith(prefix)), 1024)


def _claude(model: str | None) -> bool:
    return "claude" in (model or "").lower()


def rules_for(provider, model: str | None) -> CacheRules:
    """The rules for a provider object and the model it is asked for. A provider's
    `prompt_cache: {markers, ttl, cache_key}` config overrides the defaults below."""
    kind = getattr(provider, "kind", "")
    conf = getattr(provider, "config", {}) or {}
    host = urlparse(getattr(provider, "base_url", "") or "").hostname or ""
    if kind in ("anthropic", "azure_anthropic"):
        # Anthropic itself and Azure's Foundry take `ttl`; other Anthropic-compatible hosts
        # (Z.AI, Moonshot, Ollama, gateways) are not documented to, and some reject it with a 400.
        base = CacheRules("cache_control", ttl=host.endswith("anthropic.com") or host.endswith(".azure.com"))
    elif kind == "bedrock":
        base = CacheRules("cachePoint", ttl=True) if _claude(model) or "nova" in (model or "") else CacheRules()
    elif kind in ("openai", "azure_openai"):
        flavor = getattr(provider, "flavor", "")
        m = (model or "").lower()
        if flavor == "openrouter" and ("claude" in m or "gemini" in m):
            base = CacheRules("parts", ttl="claude" in m)
        else:
            base = CacheRules(cache_key=flavor in ("openai", "azure"))
    else:
        base = CacheRules()
    over = conf.get("prompt_cache") if isinstance(conf.get("prompt_cache"), dict) else {}
    return CacheRules(markers=over.get("markers", base.markers), ttl=bool(over.get("ttl", base.ttl)),
                      max_points=base.max_points, min_tokens=min_tokens_for(model),
                      cache_key=bool(over.get("cache_key", base.cache_key)))


def session_cache_key(session: str | None) -> str | None:
    """A stable, opaque `prompt_cache_key` for a client session (no session id leaves as is)."""
    if not session:
        return None
    return "lynkr-" + hashlib.sha256(session.encode()).hexdigest()[:24]


# ---- the markers in a canonical request --------------------------------------------------------

def _marked(request: dict) -> list:
    """(slot, block) of every block that carries a marker, in prefix order; a slot is (section,
    index, block index). One pass over the blocks: an agent's request has a few hundred of them."""
    out = []
    for i, t in enumerate(request.get("tools") or ()):
        if isinstance(t, dict) and "cache_control" in t:
            out.append((("tools", i, None), t))
    system = request.get("system")
    if isinstance(system, list):
        for i, b in enumerate(system):
            if isinstance(b, dict) and "cache_control" in b:
                out.append((("system", i, None), b))
    for i, m in enumerate(request.get("messages") or ()):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for j, b in enumerate(content):
                if isinstance(b, dict) and "cache_control" in b:
                    out.append((("messages", i, j), b))
    return out


def _get(request: dict, slot) -> dict:
    section, i, j = slot
    item = request[section][i]
    return item if j is None else item["content"][j]


def count_points(request: dict) -> int:
    return len(_marked(request))


class _Editor:
    """Copy-on-write edits of one request: the lists and dicts on the way to a changed block are
    copied; everything else is shared with the original (and keeps its JSON memo)."""

    def __init__(self, request: dict):
        self.request = request
        self.edits: dict = {}

    def get(self, slot) -> dict:
        return self.edits.get(slot) or _get(self.request, slot)

    def set(self, slot, block: dict) -> None:
        self.edits[slot] = block

    def result(self) -> dict:
        if not self.edits:
            return self.request
        out = dict(self.request)
        for section in ("tools", "system"):
            changed = {i: b for (s, i, _j), b in self.edits.items() if s == section}
            if changed:
                out[section] = [changed.get(i, b) for i, b in enumerate(self.request[section])]
        by_message: dict = {}
        for (s, i, j), b in self.edits.items():
            if s == "messages":
                by_message.setdefault(i, {})[j] = b
        if by_message:
            msgs = list(self.request["messages"])
            for i, blocks in by_message.items():
                msgs[i] = {**msgs[i], "content": [blocks.get(j, b) for j, b in enumerate(msgs[i]["content"])]}
            out["messages"] = msgs
        return out


def _with(block: dict, cc: dict | None) -> dict:
    out = {k: v for k, v in block.items() if k != "cache_control"}
    if cc is not None:
        out["cache_control"] = cc
    return out


# ---- fixing what the client sent ---------------------------------------------------------------------

def _sanitize(marked: list, rules: CacheRules, ed: _Editor) -> list[str]:
    fixes: list[str] = []
    seen_5m = False
    kept: list = []
    for slot, block in marked:
        cc = block["cache_control"]
        if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
            kind = cc.get("type") if isinstance(cc, dict) else type(cc).__name__
            fixes.append(f"{_where(slot)}: removed cache_control of unknown type {kind!r}")
            ed.set(slot, _with(block, None))
            continue
        new = cc
        ttl = cc.get("ttl")
        if "ttl" in cc and ttl not in TTLS:
            fixes.append(f"{_where(slot)}: removed ttl {ttl!r} (not 5m or 1h)")
            new = {k: v for k, v in cc.items() if k != "ttl"}
        elif ttl == "1h" and not rules.ttl:
            fixes.append(f"{_where(slot)}: removed ttl 1h (the upstream does not take it)")
            new = {k: v for k, v in cc.items() if k != "ttl"}
        elif ttl == "1h" and seen_5m:
            fixes.append(f"{_where(slot)}: 1h after a 5m breakpoint is 5m")
            new = {k: v for k, v in cc.items() if k != "ttl"}
        if new.get("ttl") != "1h":
            seen_5m = True
        if new is not cc:
            ed.set(slot, _with(block, new))
        kept.append(slot)
    if len(kept) > rules.max_points:
        drop = kept[rules.max_points - 1:-1]
        for slot in drop:
            ed.set(slot, _with(ed.get(slot), None))
        fixes.append(f"removed {len(drop)} breakpoint(s) over the upstream's {rules.max_points} "
                     f"({', '.join(_where(s) for s in drop)})")
    return fixes


def _where(slot) -> str:
    section, i, j = slot
    return f"{section}[{i}]" + (f".content[{j}]" if j is not None else "")


# ---- adding breakpoints ----------------------------------------------------------------------------

def _parts_before(request: dict, slot):
    """The request's parts in prefix order up to and including `slot`'s block."""
    section, i, j = slot
    tools = request.get("tools") or []
    yield from tools[: i + 1] if section == "tools" else tools
    if section == "tools":
        return
    system = request.get("system") or []
    yield from system if isinstance(system, list) else (system,)
    if section == "system":
        return
    yield from request["messages"][:i]
    yield from request["messages"][i]["content"][: j + 1]


def _long_enough(request: dict, slot, min_tokens: int) -> bool:
    """Whether the prefix up to `slot` reaches `min_tokens` (4 bytes of JSON a token); stops
    serialising as soon as it does, so a long request costs a few parts, not all of them."""
    need, seen = min_tokens * 4, 0
    for part in _parts_before(request, slot):
        seen += len(orjson.dumps(part))
        if seen >= need:
            return True
    return False


def _markable(block: dict) -> bool:
    if block.get("type") in _UNMARKABLE or str(block.get("type", "")).startswith("_") or proxy_added(block):
        return False
    return block.get("type") != "text" or bool((block.get("text") or "").strip())


def _last_markable(request: dict, i: int):
    content = request["messages"][i].get("content")
    if not isinstance(content, list):
        return None
    for j in range(len(content) - 1, -1, -1):
        if isinstance(content[j], dict) and _markable(content[j]):
            return ("messages", i, j)
    return None


def _candidates(request: dict) -> list:
    out = []
    tools = request.get("tools") or []
    if tools and isinstance(tools[-1], dict) and tools[-1].get("name"):
        out.append(("tools", len(tools) - 1, None))
    system = request.get("system")
    if isinstance(system, list) and system and isinstance(system[-1], dict) and _markable(system[-1]):
        out.append(("system", len(system) - 1, None))
    msgs = request.get("messages") or []
    last_assistant = max((i for i, m in enumerate(msgs) if isinstance(m, dict) and m.get("role") == "assistant"),
                         default=None)
    if last_assistant is not None and last_assistant < len(msgs) - 1:
        prev_user = max((i for i in range(last_assistant) if msgs[i].get("role") == "user"), default=None)
        if prev_user is not None:
            out.append(_last_markable(request, prev_user))
    if msgs:
        out.append(_last_markable(request, len(msgs) - 1))
    return [s for s in out if s is not None]


def _add(request: dict, rules: CacheRules, ttl: str | None, ed: _Editor) -> list[str]:
    cc = {"type": "ephemeral", **({"ttl": ttl} if ttl == "1h" and rules.ttl else {})}
    added: list = []
    for slot in _candidates(request):
        if len(added) >= rules.max_points:
            break
        # Prefixes only grow: once one candidate is long enough, every later one is.
        if slot in added or (not added and not _long_enough(request, slot, rules.min_tokens)):
            continue
        ed.set(slot, {**_get(request, slot), "cache_control": cc})
        added.append(slot)
    return [_where(s) for s in added]


def _short_and_unmarked(request: dict, min_tokens: int) -> bool:
    """Whether a request with no tools and a few messages is shorter than the shortest prefix the
    upstream caches and carries no marker: then there is nothing to add and nothing to fix, and
    one serialisation says so where the walk over its blocks cost a small request ~7 µs. (A
    request with tools, as every agent's is, is walked: it is rarely this short.)"""
    if request.get("tools") or len(request.get("messages") or ()) > 4:
        return False
    raw = orjson.dumps(request)
    return len(raw) < min_tokens * 4 and b'"cache_control"' not in raw


def prepare(request: dict, rules: CacheRules, *, breakpoints: bool = True, ttl: str | None = None
            ) -> tuple[dict, dict]:
    """The request with the client's markers fixed for this upstream and, when it has none,
    Lynkr's breakpoints; and a note of what changed ({} when nothing did)."""
    if not rules.explicit or _short_and_unmarked(request, rules.min_tokens):
        return request, {}
    ed = _Editor(request)
    note: dict = {}
    marked = _marked(request)
    if marked:
        fixes = _sanitize(marked, rules, ed)
        if fixes:
            note["fixed"] = fixes
    elif breakpoints:
        added = _add(request, rules, ttl, ed)
        if added:
            note["added"] = added
    return ed.result(), note

