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

from lynkr.kit.heap import kept
from lynkr.cache.parts import key_json

__all__ = ["reuse", "MIN_BODY"]

# Below this the parts are cheap to serialise, and a request the stages never serialise (passthrough)
# is better left whole for the telemetry thread (lynkr.telemetry.writer.lighten): a small
# passthrough request cost ~10 % more CPU walked (439 -> 482 µs, interleaved A/B).
MIN_BODY = 8192

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
    pos = 0
    # Nothing after the last part needs reading: what the walk records depends only on the bytes
    # before each part.
    left = sum(k in body for k in PARTS)
    for i, (k, v) in enumerate(body.items()):
        if not left:
            break
        head = (b"," if i else b"{") + key_json(k) + b":"
        if not raw.startswith(head, pos):
            break
        pos += len(head)
        if k in PARTS:
            left -= 1
        if k in LISTS and type(v) is list:
            now[k] = seen = []
            pos = _items(v, prior.get(k) or (), raw, pos, memo, seen)
        elif k == "system" and type(v) in _WHOLE:
            j = _take(v, prior.get(k), raw, pos, memo)
            if j is not None:
                now[k] = j
                pos += len(j)
            else:
                pos = -1
        else:
            # The other fields (model, max_tokens, metadata…) only move the walk on.
            try:
                j = orjson.dumps(v)
            except TypeError:
                break
            pos = pos + len(j) if raw.startswith(j, pos) else -1
        if pos < 0:
            break
    return _remember(key, now, prior)


def _items(items: list, old, raw: bytes, pos: int, memo: dict, seen: list) -> int:
    """Where `raw` goes on after the list `items` starting at `pos` (-1 where it stops being
    orjson's JSON of them); each item's JSON recorded in `memo` and appended to `seen`."""
    if not raw.startswith(b"[", pos):
        return -1
    pos += 1
    for i, item in enumerate(items):
        if i:
            if not raw.startswith(b",", pos):
                return -1
            pos += 1
        j = _take(item, old[i] if i < len(old) else None, raw, pos, memo)
        if j is None:
            return -1
        seen.append(j)
        pos += len(j)
    return pos + 1 if raw.startswith(b"]", pos) else -1


# A complete object, array or string is read as the same value wherever it sits; a number is not
# (`12` is the start of `123`), so only these are parts.
_WHOLE = (dict, list, str)


def _take(value, guess: bytes | None, raw: bytes, pos: int, memo: dict) -> bytes | None:
    """The JSON of the part `value` that `raw` holds at `pos` — `guess` (the previous request's
    JSON at this position) when it is that, else orjson's — recorded in `memo`; None where `raw`
    holds something else."""
    if type(value) not in _WHOLE:
        return None
    if guess is None or not raw.startswith(guess, pos):
        try:
            guess = orjson.dumps(value)
        except TypeError:
            return None
        if not raw.startswith(guess, pos):
            return None
        guess = kept(guess)             # lives on as the next turn's guess (lynkr.kit.heap)
    memo[id(value)] = (value, guess)
    return guess


def _remember(key: tuple, parts: dict, prior: dict) -> int:
    """Keep this request's parts for the session's next one; returns how many were `prior`'s."""
    global _held
    reused = size = 0
    for k, j in parts.items():
        was = prior.get(k)
        if k == "system":
            reused += j is was
            size += len(j)
        else:
            was = was or ()
            reused += sum(a is b for a, b in zip(j, was))
            size += sum(map(len, j))
    old = _last.pop(key, None)
    if old is not None:
        _held -= old[1]
    if size:
        if _held + size > MAX_BYTES:
            _last.clear()
            _held = 0
        _last[key] = (parts, size)
        _held += size
    return reused


def forget() -> None:
    """Drop every session's parts (tests)."""
    global _held
    _last.clear()
    _held = 0
