"""Memories go into the newest user turn, after everything the client sent in it — after the
last prompt-cache breakpoint — and stay there on every later turn.

A provider caches a prompt by its prefix. Memories written into the system prompt (what the
Node.js Lynkr did) change the prefix whenever the retrieved set changes, so every turn misses.
Here a turn's memories are one text block appended to that turn's user message, and the session
remembers (lynkr/kit/session.py) which message got which block: turn n+1 re-sends turn n's
message without it, and the stage puts the same block back, so the bytes upstream repeat turn
n's exactly (`lynkr replay` counts 0 prefix violations). A memory already shown in the session
is not shown again.
"""
from __future__ import annotations

import hashlib

import orjson

from lynkr.kit.harness import PROXY_TAG
from lynkr.memory.store import Memory

__all__ = ["Injected", "render", "apply", "message_digest", "TAG"]

TAG = PROXY_TAG[1:] + "memory"     # `<lynkr-memory>`: provider prompt caching never marks it


class Injected:
    """One session's injections: message index -> (digest of the message as the client sent
    it, the block added), and the memory ids shown."""

    __slots__ = ("blocks", "shown", "learned")

    def __init__(self):
        self.blocks: dict[int, tuple[str, dict]] = {}
        self.shown: set[str] = set()
        self.learned: set[str] = set()       # digests of the user messages already learned from


def _unmarked(content):
    """The content without `cache_control`: the client moves its breakpoint every turn, and a
    marker is no part of the cached bytes."""
    if isinstance(content, list):
        return [{k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b for b in content]
    return content


def message_digest(message: dict) -> str:
    try:
        raw = orjson.dumps(_unmarked(message.get("content")))
    except TypeError:
        raw = repr(message.get("content")).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def render(memories: list[Memory]) -> dict:
    lines = "\n".join(f"- [{m.id}] {m.text}" for m in memories)
    return {"type": "text", "text": f"<{TAG}>\nFrom this project's memory (saved in earlier sessions; use only "
                                    f"if relevant, memory_forget removes a wrong one):\n{lines}\n</{TAG}>"}


def apply(request: dict, injected: Injected) -> dict:
    """`request` with the session's earlier blocks put back where they were (copy-on-write); a
    message the client changed since gets nothing."""
    messages = request.get("messages") or []
    changed = None
    for i, (digest, block) in injected.blocks.items():
        if i >= len(messages):
            continue
        msg = messages[i]
        if not isinstance(msg, dict) or msg.get("role") != "user" or message_digest(msg) != digest:
            continue
        content = msg.get("content")
        content = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        if changed is None:
            changed = list(messages)
        changed[i] = {**msg, "content": content + [block]}
    return request if changed is None else {**request, "messages": changed}
