"""What the harness added to a user message, taken out: Claude Code wraps the context it injects in
`<system-reminder>` blocks, Codex sends `<environment_context>`. Scoring (lynkr/routing/text.py)
and memory (lynkr/memory/extract.py) read only what the person wrote.
"""
from __future__ import annotations

import re

from lynkr.kit.cache import remembered, text_size

__all__ = ["strip_harness", "proxy_added", "PROXY_TAG"]

# Text the proxy itself appends to a user turn (the memory stage's `<lynkr-memory>` block) starts
# with this; provider prompt caching puts its breakpoint before such a block, never on it.
PROXY_TAG = "<lynkr-"

# Harness tags are lower-case words joined by - or _ (system-reminder, environment_context,
# command-name, local-command-stdout); people rarely write those in prose, HTML tags have no
# separator, so <div> or <T> in a pasted snippet stays.
_HARNESS_BLOCK = re.compile(r"<([a-z][a-z0-9]*(?:[-_][a-z0-9]+)+)(?:\s[^>]*)?>.*?</\1>\s*", re.DOTALL)


def strip_harness(text: str) -> str:
    if "<" not in text:
        return text.strip()
    return _stripped(text)


def proxy_added(block) -> bool:
    """A text block the proxy appended (not the client's)."""
    return isinstance(block, dict) and block.get("type") == "text" and str(block.get("text", "")).startswith(PROXY_TAG)


# Claude Code resends the same reminder-wrapped blocks every turn: each text is stripped once.
_stripped = remembered(lambda text: _HARNESS_BLOCK.sub("", text).strip(), max_size=1_000_000, size=text_size)
