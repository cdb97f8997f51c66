"""Finding and replacing tool-result text in a canonical request, copy-on-write.

The savings stages (toon, crush) rewrite only tool-result payloads: never tool schemas, tool-call
arguments or what the user typed. A payload is addressed by where it sits — (message index, block
index, inner block index or None for a string `content`) — which stays the same on every later
turn of a session, because agents only ever append to the history.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from lynkr.kit.cache import remembered, text_size

__all__ = ["Payload", "tool_results", "replace_payloads", "tool_names_by_id", "user_texts"]


@dataclass(frozen=True, slots=True)
class Payload:
    msg: int
    block: int
    inner: int | None          # None: the tool_result's `content` is a string
    text: str
    tool_use_id: str
    is_error: bool


def tool_results(request: dict) -> Iterator[Payload]:
    """Every text payload of every tool_result, oldest first."""
    for mi, msg in enumerate(request.get("messages") or ()):
        if not isinstance(msg, dict) or msg.get("role") != "user":
            continue
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        for bi, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            tid = str(block.get("tool_use_id") or "")
            err = bool(block.get("is_error"))
            inner = block.get("content")
            if isinstance(inner, str):
                yield Payload(mi, bi, None, inner, tid, err)
            elif isinstance(inner, list):
                for ci, part in enumerate(inner):
                    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                        yield Payload(mi, bi, ci, part["text"], tid, err)


def replace_payloads(request: dict, new_text: dict[tuple, str]) -> dict:
    """A new request with the payloads at `(msg, block, inner)` replaced; untouched parts are shared."""
    if not new_text:
        return request
    messages = list(request["messages"])
    by_msg: dict[int, dict[int, dict]] = {}
    for (mi, bi, ci), text in new_text.items():
        by_msg.setdefault(mi, {}).setdefault(bi, {})[ci] = text
    for mi, blocks in by_msg.items():
        msg = messages[mi]
        content = list(msg["content"])
        for bi, parts in blocks.items():
            block = dict(content[bi])
            if None in parts:
                block["content"] = parts[None]
            else:
                inner = list(block["content"])
                for ci, text in parts.items():
                    inner[ci] = {**inner[ci], "text": text}
                block["content"] = inner
            content[bi] = block
        messages[mi] = {**msg, "content": content}
    return {**request, "messages": messages}


def tool_names_by_id(request: dict) -> dict[str, str]:
    names = {}
    for msg in request.get("messages") or ():
        if isinstance(msg, dict) and msg.get("role") == "assistant" and isinstance(msg.get("content"), list):
            for block in msg["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    names[str(block.get("id"))] = str(block.get("name"))
    return names


# Claude Code wraps harness context (git status, attribution rules) in <system-reminder> tags inside
# the user's message; that text is not what the user asked for.
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)


def user_texts(request: dict) -> list[str]:
    """What the user typed, oldest first: text blocks of user messages, harness reminders removed."""
    out = []
    for msg in request.get("messages") or ():
        if not isinstance(msg, dict) or msg.get("role") != "user":
            continue
        content = msg.get("content")
        parts = [content] if isinstance(content, str) else [
            b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text"]
        text = _without_reminders("\n".join(p for p in parts if isinstance(p, str)))
        if text:
            out.append(text)
    return out


# An agent resends its first user message, reminders and all, every turn: the regex runs once a text.
_without_reminders = remembered(lambda text: _REMINDER.sub(" ", text).strip(), max_size=1_000_000, size=text_size)
