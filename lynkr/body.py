"""The request's JSON has one owner: `x.body`, a `Body` the engine makes for every exchange.

An agent resends its whole conversation every turn (system prompt, tools, every earlier message),
and several steps need the compact JSON of those parts: the exact cache's key (each part),
strip_tools (each tool), tier_route's size estimate (the whole request), the Anthropic upstream
body and the telemetry row's token counts. The Body serialises a part once per request and hands
the same bytes to each of them; for a client that sends compact UTF-8 JSON (Claude Code, Codex) it
does not serialise the parts the client resent at all, it finds them in the body's bytes (`read`).
Nothing else keeps a part's JSON: stages, providers and telemetry ask the Body.

The one rule that makes remembered JSON safe: the JSON of a part is remembered by the part's
identity, so a part edited *in place* would keep its old JSON. Stages therefore declare how they
edit (`Stage.edits`): the built-in stages change the request copy-on-write (they replace the
list or dict they change and never mutate a part), so after them the remembered JSON holds; after
any stage that does not declare it (a project's own stage, by default) the engine calls `forget()`
and the parts are serialised again as they are now. An in-place edit is therefore always what goes
upstream; a stage that declares copy-on-write falsely is caught when `LYNKR_CHECK_EDITS=1` (the
test suite sets it): `verify` then compares every remembered JSON with the part after each stage.
"""
from __future__ import annotations

import os

import orjson

__all__ = ["Body", "EditedInPlace", "MIN_BODY", "CHECK_EDITS", "key_json"]

# Below this the parts are cheap to serialise, and a request the stages never serialise (passthrough)
# is better left whole for the telemetry thread (lynkr.telemetry.writer.lighten): a small
# passthrough request cost ~10 % more CPU walked (439 -> 482 µs, interleaved A/B).
MIN_BODY = 8192

# Verify after every stage that declares copy-on-write that it kept its word (costs a serialisation
# of every remembered part per stage: for tests and for trying a new stage, not for serving).
CHECK_EDITS = os.environ.get("LYNKR_CHECK_EDITS", "") not in ("", "0")


class Body:
    """The serialised JSON of one request's parts, their token plan, and the upstream body.

    `json_of(part)`: `orjson.dumps(part)`, once per request. `json_len(request)` and
    `json_bytes(request)`: `len(orjson.dumps(request))` and `orjson.dumps(request)` joined from the
    parts' remembered JSON. `upstream(x, request)`: the bytes an upstream is sent, with the
    telemetry's token plan read while the parts are hot. `forget()`: a stage may have edited a
    part in place; what was remembered is dropped.
    """

    __slots__ = ("_json", "tokens", "models", "planner")

    def __init__(self, planner=None):
        # id(part or list of parts) -> (it, its JSON). Holding the part keeps its id from being
        # reused while it is remembered. None until something is serialised: lighten() leaves a
        # small request that nothing serialised whole for the telemetry thread.
        self._json: dict | None = None
        # The telemetry row's token plan (lynkr.telemetry.writer): (the plan, the requests it read).
        self.tokens: tuple | None = None
        # (requested model, called model), kept by lighten() once the request itself was let go.
        self.models: tuple | None = None
        # planner(x), called by upstream() (lynkr.telemetry.writer.note_tokens), or None.
        self.planner = planner

    # -- the parts' JSON ---------------------------------------------------------------------
    def json_of(self, part) -> bytes:
        """orjson.dumps(part), once per request."""
        memo = self._json
        if memo is None:
            memo = self._json = {}
        hit = memo.get(id(part))
        if hit is not None and hit[0] is part:
            return hit[1]
        raw = orjson.dumps(part)
        memo[id(part)] = (part, raw)
        return raw

    def remember(self, part, raw: bytes) -> None:
        """Record a new part's JSON known from elsewhere (a remembered minified tool)."""
        if self._json is None:
            self._json = {}
        self._json[id(part)] = (part, raw)

    def json_len(self, request: dict) -> int:
        """len(orjson.dumps(request)), from the parts' remembered JSON."""
        if self._json is None:
            return len(orjson.dumps(request))
        return sum(map(len, self._pieces(request)))

    def json_bytes(self, request: dict) -> bytes:
        """orjson.dumps(request), byte for byte, from the parts' remembered JSON: the upstream body
        of a 62 KB Claude Code request is its ~25 parts joined instead of serialised again."""
        if self._json is None:
            # Nothing remembered (a small request no stage serialised): one call, not a walk of
            # the parts that would serialise each of them anyway.
            return orjson.dumps(request)
        return b"".join(self._pieces(request))

    def upstream(self, x, request: dict) -> bytes:
        """The JSON of `request`, what `x` sends upstream; the token counts the telemetry row needs
        are read now, while the parts just joined are in the CPU's caches (read at the end of the
        request, after the round trip and other requests' work, they cost ~4 % of the event loop
        on a 62 KB miss)."""
        data = self.json_bytes(request)
        if self.planner is not None:
            self.planner(x)
        return data

    @property
    def known(self) -> dict | None:
        """The remembered JSON, id(part) -> (part, JSON), for counting tokens by it (lynkr.kit.tokens);
        None when nothing was serialised. Read it, never change it."""
        return self._json

    def release(self) -> dict | None:
        """`known`, and the Body lets it go (the request is finished: its JSON lives no longer)."""
        memo, self._json = self._json, None
        return memo

    # -- after a stage -----------------------------------------------------------------------
    def forget(self) -> None:
        """A stage that may have edited parts in place ran: nothing remembered is trusted."""
        self._json = None

    def verify(self, stage_id: str) -> None:
        """Raise EditedInPlace when a remembered JSON is no longer its part's (CHECK_EDITS)."""
        for part, raw in list((self._json or {}).values()):
            try:
                now = orjson.dumps(part)
            except TypeError:
                now = None
            if now != raw:
                self._json = None
                raise EditedInPlace(stage_id, raw, now)

    def _pieces(self, request: dict):
        """Compact JSON, as orjson writes it: a dict is `{` + `"key":value` joined by commas + `}`,
        a list `[` + items joined by commas + `]`."""
        if any(type(k) is not str for k in request):
            yield orjson.dumps(request)           # raises as orjson does
            return
        memo = self._json
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
                    hit = memo[id(v)] = (v, b"[" + b",".join([self.json_of(item) for item in v]) + b"]")
                yield hit[1]
            else:
                yield orjson.dumps(v)
        yield b"}"

    # -- the client's bytes ------------------------------------------------------------------
    def read(self, raw: bytes, parsed, session: str | None) -> int:
        """Find in the client's bytes `raw` the JSON of the parts of `parsed` (what they parsed
        into), taking the session's previous request's JSON for the parts it resent; returns how
        many were (the rest were serialised). Bodies under MIN_BODY are not read."""
        if len(raw) < MIN_BODY or type(parsed) is not dict:
            return 0
        if self._json is None:
            self._json = {}
        return _walk(raw, parsed, session, self._json)


class EditedInPlace(RuntimeError):
    """A stage that declares `edits = "copy-on-write"` changed a part of the request in place."""

    def __init__(self, stage_id: str, was: bytes, now: bytes | None):
        self.stage_id = stage_id
        super().__init__(
            f"stage '{stage_id}' declares edits = \"copy-on-write\" but changed a part of the request in place "
            f"(was {was[:80]!r}…, now {(now or b'not JSON')[:80]!r}…): replace the list or dict it changes, "
            "or leave `edits` at its default, \"in-place\"")


_keys: dict[str, bytes] = {}


def key_json(k: str) -> bytes:
    """orjson.dumps(k) for a dict key, remembered for the few keys requests use."""
    raw = _keys.get(k)
    if raw is None:
        raw = orjson.dumps(k)
        if len(_keys) < 1024:
            _keys[k] = raw
    return raw


# -- reading the client's bytes --------------------------------------------------------------------
#
# Serialising the resent parts again was the largest single cost a 62 KB Claude Code request had on
# the event loop (~80 µs, most of it encoding the tool descriptions' non-ASCII strings to UTF-8
# once more), and hashing the fresh JSON for the memos ~20 µs more.
#
# `_walk` reads the body's bytes along what they parsed into, in the order compact JSON writes it,
# and at each part (the system prompt, a tool, a message) checks whether the bytes there are the
# JSON this session's previous request had at the same position. While every byte before a part is
# the compact JSON of the values before it, the bytes at that point are where the part's own JSON
# starts, and a complete JSON object, array or string reads as the same value wherever it sits: so
# when they match, that JSON is the part's, byte for byte as `orjson.dumps` writes it (and its hash
# is already computed). A part that does not match is serialised and checked the same way, and kept
# for the next turn. The walk stops at the first byte that is not compact JSON as orjson writes it
# (a space, an escaped non-ASCII character, a number written otherwise): what it recorded before
# that point stays true, and a client that sends other JSON pays for a comparison that ends at its
# first space. The entries are the same `(part, JSON)` pairs `json_of` makes, so nothing downstream
# can tell where a part's JSON came from; the upstream body is the same bytes.

# Parts remembered for the next turn, by position. Their JSON is kept per session and model, the
# total bounded; when full the table starts afresh (each session's next request refills it).
LISTS = ("messages", "tools")
PARTS = ("system", *LISTS)
MAX_BYTES = 8 << 20

_last: dict[tuple, tuple[dict, int]] = {}     # (session, model) -> (parts by position, their bytes)
_NONE: tuple = ({}, 0)
_held = 0


def _walk(raw: bytes, body: dict, session: str | None, memo: dict) -> int:
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
        # Lives on as the next turn's guess: in an allocation of its own size, not orjson's
        # oversized buffer (lynkr.kit.heap.kept says why).
        guess = bytes(memoryview(guess))
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


def forget_sessions() -> None:
    """Drop every session's remembered parts (tests)."""
    global _held
    _last.clear()
    _held = 0
