"""Claude Code's background calls: small requests the harness makes beside the user's task.

They need no strong model, so `score` sends them to SIMPLE whatever their text says:
- prompt suggestion: the last user message starts with `[SUGGESTION MODE:`;
- quota / warm-up probes: `max_tokens: 1`, or a single message "quota", "count" or "Warmup";
- session title, topic and recap helpers: no tools, and the system prompt or last message asks for a title;
- the haiku-class background model (`ANTHROPIC_SMALL_FAST_MODEL`): the client chose a small model itself.
"""
from __future__ import annotations

import fnmatch
import re

from lynkr.routing.text import Conversation

__all__ = ["side_request"]

_PROBE_WORDS = {"quota", "count", "warmup", "ping", "test"}
# In a system prompt any "write a title" instruction marks a helper call. In a user message only
# the harness's own wording does: "create a page with the title …" is a real task.
_TITLE_SYSTEM = re.compile(
    r"\b(?:write|generate|create|come up with|suggest|extract)\b[^.\n]{0,60}\btitle\b|\b\d+-\d+ word title\b|"
    r"new conversation topic|isNewTopic|succinct title|user stepped away|recap what you were doing",
    re.IGNORECASE)
_TITLE_USER = re.compile(
    r"\b\d+-\d+ word title\b|\btitle for (?:the|this) (?:following )?(?:conversation|session|chat)\b|"
    r"respond with the title|new conversation topic|user stepped away and is coming back|recap what you were doing",
    re.IGNORECASE)


def _system_text(request: dict, limit: int = 4000) -> str:
    system = request.get("system")
    if isinstance(system, str):
        return system[:limit]
    if isinstance(system, list):
        return "\n".join(b.get("text", "")[:limit] for b in system if isinstance(b, dict))[: limit * 2]
    return ""


def side_request(request: dict, conv: Conversation, background_models: list[str]) -> str | None:
    """Why this is a background call (suggestion|probe|title|background_model), or None."""
    last = conv.last_text.lstrip()
    if last.startswith("[SUGGESTION MODE:"):
        return "suggestion"
    max_tokens = request.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens <= 1:
        return "probe"
    if conv.messages <= 2 and last.strip().lower() in _PROBE_WORDS:
        return "probe"
    if not conv.tools and (_TITLE_SYSTEM.search(_system_text(request)) or _TITLE_USER.search(last[:4000])):
        return "title"
    model = request.get("model")
    if isinstance(model, str) and any(fnmatch.fnmatchcase(model.lower(), p.lower()) for p in background_models):
        return "background_model"
    return None
