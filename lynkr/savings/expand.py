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

import functools
import hashlib
import logging
import os
import re
from pathlib import Path

from lynkr.exchange import Exchange
from lynkr.kit.cache import Bounded
from lynkr.wire.answered import answering, tool_error

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


async def _answer(store: CrushStore, _x: Exchange, block: dict) -> dict:
    handle = (block.get("input") or {}).get("handle")
    text = store.get(handle)
    if text is None:
        return tool_error(block, f"no shortened result has the handle {handle!r}")
    return {"type": "tool_result", "tool_use_id": block.get("id"), "content": text}


def expand_interceptor(store: CrushStore):
    """Answers `lynkr_expand` from the store (lynkr/wire/answered.py does the round trip)."""
    return answering({EXPAND_NAME: functools.partial(_answer, store)}, counter="expand_calls", max_rounds=MAX_ROUNDS)
