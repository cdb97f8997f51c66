"""The compact JSON of a request's parts, serialised once per request and shared.

Stages change a request copy-on-write, so a part (a message, a tool, the system prompt) that no
stage replaced is the very object the client's body was parsed into. Several stages serialise
those same parts: the exact cache's key (each part), strip_tools (each tool) and tier_route's size
estimate (the whole request); the telemetry writer's token counts look their parts up by the same
JSON. `json_of(part, memo)` serialises a part once per request; the memo (`request_memo(x)`, kept
in `x.vars["_json"]`) holds each part (and each list of parts it joined) beside its JSON, so an id
is never reused while it is remembered. It is dropped when the request finishes, once the
telemetry row's token counts were looked up by it (lynkr.telemetry.writer.lighten), so a memo
(~100 KB for a 62 KB request) lives no longer than its request.
`json_len(request, memo)` and `json_bytes(request, memo)` are `len(orjson.dumps(request))` and
`orjson.dumps(request)` from the parts' remembered JSON (tier_route's estimate, the upstream body).
"""
from __future__ import annotations

import orjson

__all__ = ["json_bytes", "json_of", "json_len", "key_json", "memo_of", "remember", "request_memo"]

KEY = "_json"


def request_memo(x) -> dict:
    """The request's memo: id(part or list of parts) -> (it, its JSON)."""
    memo = x.vars.get(KEY)
    if memo is None:
        memo = x.vars[KEY] = {}
    return memo


def memo_of(x) -> dict | None:
    """The request's memo if a stage made one (for lynkr.kit.tokens.count_request), else None."""
    return x.vars.get(KEY)


def json_of(part, memo: dict | None) -> bytes:
    """orjson.dumps(part), once per request."""
    if memo is None:
        return orjson.dumps(part)
    hit = memo.get(id(part))
    if hit is not None and hit[0] is part:
        return hit[1]
    raw = orjson.dumps(part)
    memo[id(part)] = (part, raw)
    return raw


def remember(part, raw: bytes, memo: dict | None) -> None:
    """Record a part's JSON known from elsewhere (a remembered minified tool)."""
    if memo is not None:
        memo[id(part)] = (part, raw)


def json_len(request: dict, memo: dict | None) -> int:
    """len(orjson.dumps(request)), from the parts' remembered JSON."""
    return sum(map(len, _pieces(request, memo)))


def json_bytes(request: dict, memo: dict | None) -> bytes:
    """orjson.dumps(request), byte for byte, from the parts' remembered JSON: the upstream body of
    a 62 KB Claude Code request is its ~25 parts joined instead of serialised again."""
    return b"".join(_pieces(request, memo))


def _pieces(request: dict, memo: dict | None):
    """Compact JSON, as orjson writes it: a dict is `{` + `"key":value` joined by commas + `}`, a
    list `[` + items joined by commas + `]`; a top-level list is joined from its items' JSON."""
    if any(type(k) is not str for k in request):
        yield orjson.dumps(request)           # raises as orjson does
        return
    yield b"{"
    first = True
    for k, v in request.items():
        yield key_json(k) + b":" if first else b"," + key_json(k) + b":"
        first = False
        if memo is not None and type(v) is list and v:
            hit = memo.get(id(v))
            if hit is None or hit[0] is not v:
                # Remembered whole: tier_route's estimate and the upstream body read the same
                # messages list; the second walk is one lookup, not one per message.
                hit = memo[id(v)] = (v, b"[" + b",".join([json_of(item, memo) for item in v]) + b"]")
            yield hit[1]
        else:
            yield orjson.dumps(v)
    yield b"}"


_keys: dict[str, bytes] = {}


def key_json(k: str) -> bytes:
    """orjson.dumps(k) for a dict key, remembered for the few keys requests use."""
    raw = _keys.get(k)
    if raw is None:
        raw = orjson.dumps(k)
        if len(_keys) < 1024:
            _keys[k] = raw
    return raw
