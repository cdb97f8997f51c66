"""Token estimates with tiktoken's cl100k_base — one tokenizer for everything we compare, so
"client sent" and "sent upstream" are measured alike. Provider-reported usage stays the
billing truth. Callers are off the event loop: the telemetry thread, toon and crush (in a
thread pool) and offline tools.

Counts are cached per text: a coding agent resends the same system prompt, tools and history
every turn, so after the first turn almost every block is a cache hit. Under `lynkr run` the
texts not counted before go to the writer process (lynkr.storage.db_service installs `remote_count`), which holds the one
tokenizer of the host (~28 MB resident) instead of every worker holding its own.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Callable

import orjson

from lynkr.kit.cache import Bounded

__all__ = ["count_text", "count_texts", "count_request", "count_planned", "known_parts", "count_value", "encoding",
           "gathering", "warm", "forget", "TEXT_COUNTS", "PART_COUNTS"]

_lock = threading.Lock()
_enc = None


class _Approximate:
    """Used when cl100k_base cannot be loaded (offline, no cache): ~4 characters a token.
    Counts then say `approximate` in logs; the proxy keeps working."""

    def encode_ordinary(self, text: str) -> range:
        return range((len(text) + 3) // 4)


def encoding():
    """cl100k_base, loaded once. tiktoken reads TIKTOKEN_CACHE_DIR (set by ../shared/env.sh for
    offline machines) and downloads on first use otherwise. A failed load is not retried per
    call (that would put a network timeout on every count); it falls back to an estimate."""
    global _enc
    if _enc is None:
        with _lock:
            if _enc is None:
                try:
                    import tiktoken
                    enc = tiktoken.get_encoding("cl100k_base")
                    # The Python copy of the 100k ranks (~10 MB) is only read to pickle an
                    # unregistered encoding; the Rust encoder holds its own.
                    enc._mergeable_ranks = None
                    _enc = enc
                except Exception as e:  # network, cache or plugin errors all mean "cannot load"
                    logging.getLogger("lynkr.kit.tokens").warning(
                        "cannot load tiktoken cl100k_base (%s); token counts are approximate (chars/4). "
                        "Set TIKTOKEN_CACHE_DIR to a cache that holds it.", e)
                    _enc = _Approximate()
    return _enc


# ~200 bytes an entry: 16k entries (two tables) hold ~6 MB and cover the parts of many long
# sessions; 65k let a server's RSS creep for the first 60k requests before it levelled off.
_COUNTS_MAX = 16384


# (length, hash) -> token count. Keyed by a hash rather than the text so the table holds ints, not
# every tool result of every session. Generations, no lock: the telemetry thread and the stages'
# thread pool share it (an LRU behind a lock cost ~1 µs a part, ~40 a 62 KB request).
TEXT_COUNTS: Bounded[tuple, int] = Bounded(max_entries=_COUNTS_MAX)     # texts


def forget() -> None:
    """Drop every remembered count (the next counts are made afresh)."""
    TEXT_COUNTS.clear()
    PART_COUNTS.clear()


def count_text(text: str) -> int:
    if not text:
        return 0
    key = (len(text), hash(text))
    hit = TEXT_COUNTS.get(key)
    if hit is not None:
        return hit
    gathered = _gathering.texts
    if gathered is not None:
        gathered[key] = text
        return 0
    return TEXT_COUNTS.put(key, _count_new([text])[0])


def count_texts(texts: list[str]) -> list[int]:
    """count_text for several texts, with one trip to the writer process for those not yet counted."""
    keys = [(len(t), hash(t)) for t in texts]
    out = [TEXT_COUNTS.get(k) if t else 0 for k, t in zip(keys, texts)]
    todo = [i for i, n in enumerate(out) if n is None]
    if todo:
        for i, n in zip(todo, _count_new([texts[i] for i in todo])):
            out[i] = TEXT_COUNTS.put(keys[i], n)
    return out


class _Gathering(threading.local):
    texts: dict | None = None


_gathering = _Gathering()


@contextmanager
def gathering():
    """Within it, a text not counted before counts 0 and is set aside, and nothing is remembered;
    on leaving, the texts set aside are counted in one trip to the writer process. Run the same
    counts inside, then again after, and the second run is all cache hits: the telemetry thread
    does this per batch of requests instead of a round trip per new text."""
    outer = _gathering.texts
    texts = _gathering.texts = {} if outer is None else outer
    try:
        yield
    finally:
        _gathering.texts = outer
    if outer is None and texts:
        count_texts(list(texts.values()))


def warm() -> None:
    """Load cl100k_base now (in the writer process, or here without one), not in the first request."""
    _count_new(["warm up"])


# A server worker asks the writer process, which holds the one tokenizer of the host. The storage
# floor installs that call here (lynkr/storage/db_service.py; kit sits below storage): it answers
# None when there is no writer process or it failed, and the texts are counted here instead.
remote_count: Callable[[list[str]], list[int] | None] | None = None


def _count_new(texts: list[str]) -> list[int]:
    remote = remote_count
    if remote is not None:
        got = remote(texts)
        if got is not None:
            return got
    return count_here(texts)


def count_here(texts: list[str]) -> list[int]:
    """Counts with this process's own tokenizer (loaded on first use)."""
    enc = encoding()
    return [len(enc.encode_ordinary(t)) for t in texts]


def count_value(value) -> int:
    """Tokens of a JSON value as it would be sent (compact JSON for structures)."""
    if isinstance(value, str):
        return count_text(value)
    return count_text(orjson.dumps(value).decode())


def _content_tokens(content) -> int:
    if isinstance(content, str):
        return count_text(content)
    total = 0
    for block in content or ():
        if not isinstance(block, dict):
            continue
        t = block.get("type")
        if t == "text":
            total += count_text(block.get("text", ""))
        elif t == "tool_result":
            total += 4 + _content_tokens(block.get("content"))
        elif t == "tool_use":
            total += 4 + count_text(block.get("name", "")) + count_value(block.get("input", {}))
        elif t in ("thinking", "redacted_thinking"):
            total += count_text(block.get("thinking", "") or block.get("data", ""))
        elif t == "image":
            total += 1600           # Anthropic's rough per-image budget; we do not decode images
        else:
            total += count_value(block)
    return total


def count_request(body: dict | None, memo: dict | None = None, json: dict | None = None) -> int:
    """Estimated input tokens of a canonical (Anthropic-shaped) request: system, messages, tools.

    `memo` (id -> count) lets two counts of related requests share work: stages change requests
    copy-on-write, so the parts of the upstream request a stage did not touch are the very same
    objects as in the client's request and are counted once. `json` is the request's memo of
    its parts' JSON (`x.body.known`, lynkr.body): parts serialised already are not
    serialised again to find their remembered count.

    Counted inside `gathering()`, a request leaves in `memo` what it knew and the parts that had
    texts not counted yet; counted again once they are, only those parts are read (the telemetry
    thread's second pass walked every part of every request again: ~40 lookups of a 62 KB one).
    """
    if not body:
        return 0
    return _count(body, 0, None, memo, json)


def known_parts(body: dict | None, json: dict | None, seen: dict) -> tuple[int, list, dict]:
    """(tokens of `body`'s parts counted before, the parts still to count, their JSON), for a
    request whose parsed body should not outlive its response (lynkr.telemetry.writer.lighten). A
    part's count is found by the JSON remembered in `json` (`x.body.known`, lynkr.body): one dict
    lookup, no serialising, no walking its blocks. `seen` (id -> count) is shared by the two
    requests of an exchange, which have most parts in common; count_planned() counts the rest."""
    known, pending, pending_json = 0, [], {}
    if not body:
        return known, pending, pending_json
    recall = PART_COUNTS.get
    for obj, fn in _parts_of(body):
        n = seen.get(id(obj))
        j = None
        if n is None and json is not None:
            j = json.get(id(obj))
            if j is not None and j[0] is obj:
                n = recall((len(j[1]), hash(j[1])))
                if n is not None:
                    seen[id(obj)] = n
        if n is None:
            pending.append((obj, fn))
            if j is not None and j[0] is obj:
                pending_json[id(obj)] = j
        else:
            known += n
    return known, pending, pending_json


def count_planned(plan: tuple[int, list, dict], memo: dict | None = None) -> int:
    """count_request() of the request known_parts() read: its known tokens and its pending parts."""
    return _count(plan, plan[0], plan[1], memo, plan[2])


def _count(owner, known: int, parts: list | None, memo: dict | None, json: dict | None) -> int:
    memo = {} if memo is None else memo
    whole = memo.get((_WHOLE, id(owner)))
    if whole is not None and whole[0] is owner:
        known, pending = whole[1], whole[2]
        if pending is None:
            return known
        parts = pending
    elif parts is None:
        parts = _parts_of(owner)
    total = known
    left = None
    for obj, fn in parts:
        hit = memo.get(id(obj))
        if hit is not None and hit[0] is obj:
            total += hit[1]
            known += hit[1]
            continue
        n = _by_json(obj, fn, json)
        if n is None:                   # gathering: its new texts set aside, a partial count
            total += fn(obj)
            if left is None:
                left = []
            left.append((obj, fn))
            continue
        memo[id(obj)] = (obj, n)        # holding obj keeps its id from being reused meanwhile
        total += n
        known += n
    memo[(_WHOLE, id(owner))] = (owner, known, left)
    return total


_WHOLE = "request"


def _parts_of(body: dict) -> list:
    parts = []
    system = body.get("system")
    if system:
        parts.append((system, _system_tokens))
    for msg in body.get("messages") or ():
        if isinstance(msg, dict):
            parts.append((msg, _message_tokens))
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            parts.append((tool, _tool_tokens))
    return parts


def _system_tokens(system) -> int:
    return count_text(system) if isinstance(system, str) else _content_tokens(system)


def _message_tokens(msg: dict) -> int:
    return 4 + _content_tokens(msg.get("content"))


def _tool_tokens(tool: dict) -> int:
    n = count_text(tool.get("name", "")) + count_text(tool.get("description", "") or "")
    schema = tool.get("input_schema")
    return n + (count_value(schema) if schema is not None else 0)


# (len, hash) of a part's compact JSON -> its count. An agent resends the same tools, system prompt
# and history every turn as new objects: one orjson.dumps and one lookup per part is several times
# cheaper than walking its blocks again (~80 count_text calls for a 62 KB Claude Code request).
PART_COUNTS: Bounded[tuple, int] = Bounded(max_entries=_COUNTS_MAX)


def _by_json(obj, fn, json: dict | None = None) -> int | None:
    known = json.get(id(obj)) if json is not None else None
    if known is not None and known[0] is obj:
        raw = known[1]
    else:
        try:
            raw = orjson.dumps(obj)
        except TypeError:
            # Not JSON (a library caller's object): counted each time; while gathering, partial.
            return None if _gathering.texts is not None else fn(obj)
    key = (len(raw), hash(raw))
    hit = PART_COUNTS.get(key)
    if hit is not None:
        return hit
    if _gathering.texts is not None:
        return None
    return PART_COUNTS.put(key, fn(obj))
