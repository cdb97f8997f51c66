"""What the user asked, separated from what the harness added.

Claude Code wraps context it injects in `<system-reminder>` blocks inside user messages; Codex
sends `<environment_context>`; tool output arrives as `tool_result` blocks. None of that is the
user's request, so scoring looks only at human-written text. One pass over the messages also
collects the agentic facts (tool-loop depth, recent tool errors) the score uses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from lynkr.kit.cache import remembered, text_size
from lynkr.kit.harness import strip_harness

__all__ = ["Conversation", "read_conversation", "strip_harness"]

_ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|\b(?:Error|Exception|FAILED|error:|fatal:)", re.ASCII)
# Only the start of a tool result is read for error words: enough for a traceback's last line in
# short outputs, and it bounds the work on a 60 KB body.
_ERROR_SCAN_CHARS = 2000
_RECENT_RESULTS = 3
_TURNS_COUNTED = 10


@dataclass(slots=True)
class Conversation:
    ask: str = ""                    # the human text scored
    ask_source: str = "none"         # last_message | earlier_message | none
    ask_words: int = 0
    last_text: str = ""              # raw text of the last user message (harness text included)
    human_turns: int = 0             # user messages carrying human text
    messages: int = 0
    tool_loop_depth: int = 0         # assistant tool calls since the ask
    tool_errors: int = 0             # failed results among the last few tool results
    tools: int = 0                   # tools offered to the model
    tool_names: list[str] = field(default_factory=list)


def _blocks(content) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def _human_text(blocks: list) -> str:
    parts = []
    for b in blocks:
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str):
            t = strip_harness(b["text"])
            if t and not t.startswith("[SUGGESTION MODE:"):
                parts.append(t)
    return "\n".join(parts)


def _result_failed(block: dict) -> bool:
    if block.get("is_error"):
        return True
    c = block.get("content")
    if isinstance(c, list):
        c = " ".join(b.get("text", "") for b in c if isinstance(b, dict) and isinstance(b.get("text"), str))
    return isinstance(c, str) and _error_in(c[:_ERROR_SCAN_CHARS])


# The last few tool results are read again on every turn of a loop: each head is searched once
# (hashing it is several times cheaper than the search).
_error_in = remembered(lambda head: bool(_ERROR_TEXT.search(head)), max_size=1_000_000, size=text_size)


def read_conversation(request: dict) -> Conversation:
    conv = Conversation()
    messages = request.get("messages")
    messages = messages if isinstance(messages, list) else []
    conv.messages = len(messages)
    tools = request.get("tools")
    tools = tools if isinstance(tools, list) else []
    conv.tools = len(tools)
    conv.tool_names = [t.get("name", "") for t in tools if isinstance(t, dict)]
    results_seen = 0
    later_turn = False               # an assistant or user turn follows the message being read
    # Walk back from the end: tool calls and results until the user's last own words.
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        blocks = _blocks(m.get("content"))
        if role == "assistant":
            later_turn = True
            if not conv.ask and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks):
                conv.tool_loop_depth += 1
            continue
        if role != "user":
            continue
        if not later_turn:
            conv.last_text = "\n".join(b["text"] for b in blocks if isinstance(b, dict)
                                       and b.get("type") == "text" and isinstance(b.get("text"), str))
        if not conv.ask:
            for b in reversed(blocks):
                if isinstance(b, dict) and b.get("type") == "tool_result" and results_seen < _RECENT_RESULTS:
                    results_seen += 1
                    conv.tool_errors += _result_failed(b)
        if conv.ask and conv.human_turns >= _TURNS_COUNTED:
            break                    # the conversation dimension is saturated; older turns cost time only
        text = _human_text(blocks)
        if text:
            conv.human_turns += 1
            if not conv.ask:
                conv.ask = text
                conv.ask_words = len(text.split())
                conv.ask_source = "earlier_message" if later_turn else "last_message"
        later_turn = True
    return conv
