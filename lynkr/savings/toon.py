"""Lossless re-encoding of JSON tool results, in whichever form costs the fewest tokens (the `toon`
stage's algorithm; `crush` uses its JSON checks).

For a payload that is a JSON object or array, the candidates are the text as it is, compact JSON
and TOON (the `toon-format` codec, spec 4.x: tabular arrays, nested field groups, keyed tabular
maps) with each of its three delimiters. TOON is used only when `decode(encode(v))` gives back
exactly `v` (same types, same key order), and it carries a one-line header so the model knows
what it is reading. The smallest candidate by cl100k tokens wins, so the result is never larger.
The choice depends only on the text, so a payload gets the same bytes on every turn.
"""
from __future__ import annotations

import json

import toon_format

from lynkr.kit.cache import Bounded
from lynkr.kit.tokens import count_texts

__all__ = ["encode", "parse_json", "looks_binary", "header", "NotJSON", "Encoder"]

_DELIMITERS = {",": "comma", "\t": "tab", "|": "pipe"}


def header(delimiter: str) -> str:
    return (f"[TOON, lossless re-encoding of the JSON result: key[N]{{fields}}: then one "
            f"{_DELIMITERS[delimiter]}-separated row per item]")


class NotJSON(ValueError):
    pass


def _reject_constant(name):        # NaN/Infinity are not JSON; leave such text alone
    raise NotJSON(name)


def _no_duplicates(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):      # a dict would silently keep the last one: not lossless
        raise NotJSON("duplicate key")
    return obj


def _depth(value, limit: int) -> int:
    """Nesting depth, iteratively (a recursive walk would be the thing that breaks on bad input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > deepest:
            deepest = d
            if deepest > limit:
                return deepest
        if isinstance(v, dict):
            stack.extend((c, d + 1) for c in v.values() if isinstance(c, (dict, list)))
        elif isinstance(v, list):
            stack.extend((c, d + 1) for c in v if isinstance(c, (dict, list)))
    return deepest


def _canonical(value) -> str:
    # json.dumps tells True from 1 and 1.0 from 1, and keeps key order: a strict equality.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def looks_binary(text: str) -> bool:
    sample = text[:4096]
    if "\x00" in sample:
        return True
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t")
    return controls > len(sample) // 100


def parse_json(text: str, max_depth: int):
    """(value, None) for a JSON object/array, else (None, reason)."""
    s = text.strip()
    if not s or s[0] not in "[{":
        return None, "not_json"
    if looks_binary(s):
        return None, "binary"
    try:
        value = json.loads(s, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except RecursionError:
        return None, "too_deep"
    except (NotJSON, ValueError):
        return None, "not_json"
    if _depth(value, max_depth) > max_depth:
        return None, "too_deep"
    return value, None


def encode(text: str, *, max_depth: int = 32, max_chars: int = 2_000_000, use_header: bool = True) -> tuple[str, str]:
    """(text to send, how): how is `toon:<delimiter>`, `json` or a reason the text was left as it is."""
    if len(text) > max_chars:
        return text, "too_large"
    value, why = parse_json(text, max_depth)
    if why:
        return text, why
    compact = _canonical(value)
    forms = [(0, text, "as_is", None), (1, compact, "json", None)]
    for rank, delim in enumerate(_DELIMITERS, start=2):
        try:
            doc = toon_format.encode(value, delimiter=delim)
        except (TypeError, ValueError, RecursionError):
            continue
        shown = f"{header(delim)}\n{doc}" if use_header else doc
        forms.append((rank, shown, f"toon:{_DELIMITERS[delim]}", doc))
        if '"' not in doc:
            break           # nothing needed quoting: another delimiter cannot do better
    candidates = [(n, *form) for n, form in zip(count_texts([f[1] for f in forms]), forms)]
    # Smallest first (ties: as-is, then JSON, then TOON); TOON only once it decodes to exactly `value`.
    for _n, _rank, shown, how, doc in sorted(candidates, key=lambda c: c[:2]):
        if doc is None:
            return shown, how
        try:
            if _canonical(toon_format.decode(doc)) == compact:
                return shown, how
        except (ValueError, RecursionError, toon_format.ToonDecodeError):
            pass
    return text, "as_is"


class Encoder:
    """`encode` with fixed settings, remembered by text (bounded by the characters held): on turn
    n+1 every payload but the newest is a lookup. `known` is safe on the event loop while
    `encode_many` runs in a worker thread."""

    def __init__(self, *, max_depth: int = 32, max_chars: int = 2_000_000, use_header: bool = True,
                 memo_chars: int = 64_000_000):
        self.settings = {"max_depth": max_depth, "max_chars": max_chars, "use_header": use_header}
        self._memo: Bounded[str, tuple[str, str]] = Bounded(max_size=memo_chars)

    def known(self, text: str) -> tuple[str, str] | None:
        return self._memo.get(text)

    def encode_many(self, texts: list[str]) -> list[tuple[str, str]]:
        out = []
        for t in texts:
            r = encode(t, **self.settings)
            self._memo.put(t, r, len(t) + len(r[0]))
            out.append(r)
        return out
