"""The `lynkr_expand` round trip: what `crush` dropped stays one tool call away, and the client never
sees that call.

- `CrushStore` keeps every original `crush` shortened, by a handle derived from its bytes (the same
  text always gets the same handle, so the crushed text is identical on every turn). Originals live
  in memory and, unless the pipeline is only being validated, in `<state_dir>/crush/` so a restart
  does not orphan the handles already in a conversation.
- `EXPAND_TOOL` is the tool definition `crush` adds to the request.
- `expand_interceptor(store)` is a response interceptor (see docs/engine.md): when the model's turn
  calls `lynkr_expand` and nothing the client must run, the proxy answers the call from the store,
  sends the continued conversation upstream and splices the continuation into the same response —
  the client sees one assistant message. A turn that also calls client tools is passed on with the
  `lynkr_expand` calls removed (the client has to run its tools; the model can ask again later).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from lynkr.exchange import Exchange, Response
from lynkr.kit.cache import Bounded
from lynkr.wire.events import MessageAccumulator

__all__ = ["EXPAND_TOOL", "EXPAND_NAME", "CrushStore", "handle_for", "expand_interceptor"]

log = logging.getLogger("lynkr.savings.expand")

EXPAND_NAME = "lynkr_expand"
EXPAND_TOOL = {
    "name": EXPAND_NAME,
    "description": ("Returns the full original of a tool result the proxy shortened. Shortened results start "
                    "with \"[lynkr crush <handle>: ...]\" and say what was left out; call this with that handle "
                    "when the left-out part matters."),
    "input_schema": {"type": "object", "properties": {"handle": {"type": "string", "description": "e.g. c_0123456789abcdef"}},
                     "required": ["handle"]},
}
MAX_ROUNDS = 3
_HANDLE = re.compile(r"^c_[0-9a-f]{16}$")


def handle_for(text: str) -> str:
    return "c_" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class CrushStore:
    """handle → original text: a bounded in-memory LRU in front of one file per handle."""

    def __init__(self, directory: str | os.PathLike | None = None, max_memory_chars: int = 64_000_000):
        self.dir = Path(directory) if directory else None
        self._mem: Bounded[str, str] = Bounded(max_size=max_memory_chars, lru=True)
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)

    def put(self, text: str) -> str:
        """Store `text` (called from a worker thread) and return its handle."""
        h = handle_for(text)
        if self._mem.get(h) is not None:
            return h
        self._mem.put(h, text, len(text))
        if self.dir is not None:
            path = self.dir / f"{h}.txt"
            if not path.exists():
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(text, encoding="utf-8", errors="surrogatepass")
                os.replace(tmp, path)
        return h

    def get(self, handle: str) -> str | None:
        if not isinstance(handle, str) or not _HANDLE.match(handle):
            return None
        text = self._mem.get(handle)
        if text is None and self.dir is not None:
            path = self.dir / f"{handle}.txt"
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="surrogatepass")
        return text


def _answer(store: CrushStore, block: dict) -> dict:
    handle = (block.get("input") or {}).get("handle")
    text = store.get(handle)
    if text is None:
        return {"type": "tool_result", "tool_use_id": block.get("id"), "is_error": True,
                "content": f"no shortened result has the handle {handle!r}"}
    return {"type": "tool_result", "tool_use_id": block.get("id"), "content": text}


def _is_expand(block: dict) -> bool:
    return block.get("type") == "tool_use" and block.get("name") == EXPAND_NAME


def _continuation(request: dict, content: list[dict], store: CrushStore) -> dict:
    results = [_answer(store, b) for b in content if _is_expand(b)]
    messages = list(request.get("messages") or []) + [
        {"role": "assistant", "content": content}, {"role": "user", "content": results}]
    return {**request, "messages": messages}


def expand_interceptor(store: CrushStore):
    async def intercept(x: Exchange, response: Response, resend) -> Response:
        if response.error is not None:
            return response
        if response.message is not None:
            return await _complete(x, response, resend, store)
        if response.events is not None:
            response.events = _spliced(x, response.events, resend, store)
        return response
    return intercept


async def _complete(x: Exchange, response: Response, resend, store: CrushStore) -> Response:
    request = x.request
    shown: list[dict] = []
    for round_no in range(MAX_ROUNDS + 1):
        msg = response.message
        content = list(msg.get("content") or [])
        expands = [b for b in content if _is_expand(b)]
        visible = [b for b in content if not _is_expand(b)]
        client_calls = any(b.get("type") == "tool_use" for b in visible)
        x.vars["expand_calls"] = x.vars.get("expand_calls", 0) + len(expands)
        if not expands or client_calls or round_no == MAX_ROUNDS:
            final = {**msg, "content": shown + visible}
            if expands and not client_calls:
                final["stop_reason"] = "end_turn"
            response.message = final
            return response
        shown += visible
        request = _continuation(request, content, store)
        nxt = await resend(request)
        if nxt.error is not None or nxt.message is None:
            return nxt
        response = nxt
    return response


async def _spliced(x: Exchange, events, resend, store: CrushStore):
    """Forward the stream; hide `lynkr_expand` blocks; continue the turn after them, renumbering the
    continuation's blocks so the client sees one message with contiguous block indexes."""
    request = x.request
    next_index = 0
    started = False
    for round_no in range(MAX_ROUNDS + 1):
        acc = MessageAccumulator()
        index_map: dict[int, int] = {}
        hidden: set[int] = set()
        held: list[dict] = []           # message_delta / message_stop, sent once we know the turn ends
        client_calls = False
        async for ev in events:
            acc.feed(ev)
            t = ev.get("type")
            if t == "message_start":
                if not started:
                    started = True
                    yield ev
            elif t == "content_block_start":
                block = ev.get("content_block") or {}
                if _is_expand(block):
                    hidden.add(ev.get("index"))
                    continue
                client_calls |= block.get("type") == "tool_use"
                index_map[ev.get("index")] = next_index
                next_index += 1
                yield {**ev, "index": index_map[ev.get("index")]}
            elif t in ("content_block_delta", "content_block_stop"):
                if ev.get("index") in hidden:
                    continue
                yield {**ev, "index": index_map.get(ev.get("index"), ev.get("index"))}
            elif t in ("message_delta", "message_stop"):
                held.append(ev)
            else:
                yield ev                # ping, error
        x.vars["expand_calls"] = x.vars.get("expand_calls", 0) + len(hidden)
        content = (acc.message or {}).get("content") or []
        if not hidden or client_calls or round_no == MAX_ROUNDS or not any(_is_expand(b) for b in content):
            for ev in held:
                if ev.get("type") == "message_delta" and hidden and not client_calls:
                    ev = {**ev, "delta": {**(ev.get("delta") or {}), "stop_reason": "end_turn"}}
                yield ev
            return
        request = _continuation(request, content, store)
        nxt = await resend(request)
        if nxt.error is not None or nxt.events is None:
            err = nxt.error
            yield {"type": "error", "error": {"type": getattr(err, "type", None) or "api_error",
                                              "message": getattr(err, "message", None) or "expansion failed"}}
            return
        events = nxt.events
