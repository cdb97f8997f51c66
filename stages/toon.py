"""toon: re-encode JSON tool results losslessly, in whichever form costs the fewest tokens.

    - {id: json, uses: toon, with: {min_chars: 200}}

For each tool_result payload that is a JSON object or array, the candidates are the text as it is,
compact JSON and TOON (the `toon-format` codec, spec 4.x: tabular arrays, nested field groups, keyed
tabular maps) with each of its three delimiters. TOON is used only when `decode(encode(v))` gives
back exactly `v` (same types, same key order), and it carries a one-line header so the model knows
what it is reading. The smallest candidate by cl100k tokens wins, so the result is never larger.

The choice depends only on the payload's text, so a payload gets the same bytes on every turn and
the provider's prompt cache keeps hitting. Results are memoised by text: on turn n+1 every payload
but the newest is a dictionary lookup, and only new payloads are encoded, in a worker thread.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict

import toon_format

from lynkr.exchange import Exchange
from lynkr.savings.payloads import replace_payloads, tool_results
from lynkr.stage import Stage
from lynkr.kit.tokens import count_texts, warm

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


class _Memo:
    """Text → (encoded, how), bounded by total characters held."""

    def __init__(self, max_chars: int = 64_000_000):
        self._d: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._size = 0
        self._max = max_chars
        self._lock = threading.Lock()       # filled from worker threads, read on the event loop

    def get(self, key):
        with self._lock:
            hit = self._d.get(key)
            if hit is not None:
                self._d.move_to_end(key)
            return hit

    def put(self, key, value):
        with self._lock:
            if key in self._d:
                return
            self._d[key] = value
            self._size += len(key) + len(value[0])
            while self._size > self._max and self._d:
                k, v = self._d.popitem(last=False)
                self._size -= len(k) + len(v[0])


class Toon(Stage):
    name = "toon"
    summary = "Re-encodes JSON tool results as compact JSON or TOON when that is smaller; lossless, verified."
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "min_chars": {"type": "integer", "minimum": 0, "default": 200,
                          "description": "payloads shorter than this are left alone (not worth a header)"},
            "max_chars": {"type": "integer", "minimum": 1, "default": 2_000_000,
                          "description": "payloads longer than this are left alone (bounded CPU per request)"},
            "max_depth": {"type": "integer", "minimum": 1, "default": 32,
                          "description": "JSON nested deeper than this is left alone"},
            "header": {"type": "boolean", "default": True,
                       "description": "prefix TOON payloads with a one-line note telling the model the format"},
        },
    }
    examples = ["- {id: json, uses: toon}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.memo = _Memo()
        if not ctx.dry_run:
            warm()          # load cl100k_base now, not inside the first request that needs it

    def _encode(self, text: str) -> tuple[str, str]:
        o = self.options
        return encode(text, max_depth=o["max_depth"], max_chars=o["max_chars"], use_header=o["header"])

    def _encode_many(self, texts: list[str]) -> list[tuple[str, str]]:
        out = []
        for t in texts:
            r = self._encode(t)
            self.memo.put(t, r)
            out.append(r)
        return out

    async def run(self, x: Exchange) -> None:
        ev = x.event(self.id)
        todo = [p for p in tool_results(x.request) if len(p.text) >= self.options["min_chars"]]
        if not todo:
            if ev is not None:
                ev.detail["payloads"] = 0
            return
        results = {}
        missing = []
        for p in todo:
            hit = self.memo.get(p.text)
            if hit is None:
                missing.append(p)
            else:
                results[p] = hit
        if missing:
            # Parsing, encoding and counting are CPU work: keep them off the event loop.
            done = await asyncio.to_thread(self._encode_many, [p.text for p in missing])
            results.update(zip(missing, done))
        changed, how = {}, {}
        for p, (text, label) in results.items():
            how[label] = how.get(label, 0) + 1
            if text != p.text:
                changed[(p.msg, p.block, p.inner)] = text
        if changed:
            x.request = replace_payloads(x.request, changed)
        if ev is not None:
            ev.detail.update({"payloads": len(todo), "changed": len(changed), "how": how})
            if changed:
                before = "\n".join(p.text for p in todo if (p.msg, p.block, p.inner) in changed)
                ev.measure = (before, "\n".join(changed.values()))
