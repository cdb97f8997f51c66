"""The JSON of the parts a client resent unchanged: the previous request's, not serialised again.

An agent resends its whole conversation every turn: the system prompt, the tools, every earlier
message. Serialising those parts again (lynkr.cache.parts) was the largest single cost a 62 KB
Claude Code request had on the event loop (~80 µs, most of it encoding the tool descriptions'
non-ASCII strings to UTF-8 once more), and hashing the fresh JSON for the memos ~20 µs more.

`reuse(raw, body, session, memo)` walks the body's bytes `raw` along `body` (what they parsed
into), in the order compact JSON writes it, and at each part (the system prompt, a tool, a
message) checks whether the bytes there are the JSON this session's previous request had at the
same position. While every byte before a part is the compact JSON of the values before it, the
bytes at that point are where the part's own JSON starts, and a complete JSON object, array or
string reads as the same value wherever it sits: so when they match, that JSON is the part's,
byte for byte as `orjson.dumps` writes it (and its hash is already computed). A part that does not
match is serialised and checked the same way, and kept for the next turn. The walk stops at the
first byte that is not compact JSON as orjson writes it (a space, an escaped non-ASCII character,
a number written otherwise): what it recorded before that point stays true, and a client that sends
other JSON pays for a comparison that ends at its first space. Claude Code and Codex send compact
UTF-8 JSON, and their bodies are read to the end.

The memo entries are the same `(part, JSON)` pairs `json_of` makes, so nothing downstream can tell
where a part's JSON came from; the upstream body is the same bytes.
"""
from __future__ import annotations

import orjson

from ..memory import kept
from .parts import key_json

__all__ = ["reuse"]

# Parts remembered for the next turn, by position. Their JSON is kept per session and model, the
# total bounded; when full the table starts afresh (each session's next request refills it).
LISTS = ("messages", "tools")
PARTS = ("system", *LISTS)
MAX_BYTES = 8 << 20

_last: dict[tuple, tuple[dict, int]] = {}     # (session, model) -> (parts by position, their bytes)
_NONE: tuple = ({}, 0)
_held = 0


def reuse(raw: bytes, body, session: str | None, memo: dict) -> int:
    """Record in `memo` the JSON of `body`'s parts found in `raw`; returns how many were the
    previous request's (the rest were serialised)."""
    if type(body) is not dict:
        return 0
    # By model too: Claude Code's side requests (titles, summaries, on a small model) share the
    # session and would otherwise replace the main conversation's parts between two of its turns.
    model = body.get("model")
    key = (session or "", model if type(model) is str else None)
    prior = _last.get(key, _NONE)[0]
    now: dict = {}
    reused = size = pos = 0
    end = len(raw)
    # Nothing after the last part needs reading: what the walk records depends only on the bytes
    # before each part.
    left = sum(k in body for k in PARTS)
    heads = _FIRST
    for k, v in body.items():
        if not left:
            break
        head = heads.get(k) or _head(heads, k)
        heads = _NEXT
        if not raw.startswith(head, pos):
            break
        pos += len(head)
        if k in PARTS:
            left -= 1
        if k in LISTS and type(v) is list:
            old = prior.get(k) or ()
            seen: list = []
            now[k] = seen
            if pos >= end or raw[pos] != _OPEN:
                break
            pos += 1
            for i, item in enumerate(v):
                if i:
                    if pos >= end or raw[pos] != _COMMA:
                        break
                    pos += 1
                j = old[i] if i < len(old) else None
                if j is not None and type(item) in _WHOLE and raw.startswith(j, pos):
                    memo[id(item)] = (item, j)
                    reused += 1
                else:
                    j = _serialised(item, raw, pos, memo)
                    if j is None:
                        break
                seen.append(j)
                pos += len(j)
                size += len(j)
            else:
                if pos < end and raw[pos] == _CLOSE:
                    pos += 1
                    continue
            break
        if k == "system" and type(v) in _WHOLE:
            j = prior.get(k)
            if j is not None and raw.startswith(j, pos):
                memo[id(v)] = (v, j)
                reused += 1
            else:
                j = _serialised(v, raw, pos, memo)
                if j is None:
                    break
            now[k] = j
            pos += len(j)
            size += len(j)
            continue
        # The other fields (model, max_tokens, metadata…) only move the walk on.
        try:
            j = orjson.dumps(v)
        except TypeError:
            break
        if not raw.startswith(j, pos):
            break
        pos += len(j)
    _remember(key, now, size)
    return reused


# `{"key":` for the first field, `,"key":` for the others.
_FIRST: dict[str, bytes] = {}
_NEXT: dict[str, bytes] = {}


def _head(heads: dict, k: str) -> bytes:
    head = (b"{" if heads is _FIRST else b",") + key_json(k) + b":"
    if len(heads) < 256:
        heads[k] = head
    return head


# A complete object, array or string is read as the same value wherever it sits; a number is not
# (`12` is the start of `123`), so only these are parts.
_WHOLE = (dict, list, str)
_OPEN, _COMMA, _CLOSE = b"[,]"


def _serialised(value, raw: bytes, pos: int, memo: dict) -> bytes | None:
    """orjson's JSON of `value` when `raw` holds it at `pos`, recorded in `memo`; else None."""
    if type(value) not in _WHOLE:
        return None
    try:
        j = orjson.dumps(value)
    except TypeError:
        return None
    if not raw.startswith(j, pos):
        return None
    j = kept(j)                     # lives on as the next turn's guess (lynkr.memory)
    memo[id(value)] = (value, j)
    return j


def _remember(key: tuple, parts: dict, size: int) -> None:
    global _held
    old = _last.pop(key, None)
    if old is not None:
        _held -= old[1]
    if not size:
        return
    if _held + size > MAX_BYTES:
        _last.clear()
        _held = 0
    _last[key] = (parts, size)
    _held += size


def forget() -> None:
    """Drop every session's parts (tests)."""
    global _held
    _last.clear()
    _held = 0
