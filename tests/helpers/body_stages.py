"""Stages written the way a newcomer might, loaded by path in tests/test_body_owner.py."""
from lynkr import Stage

SECRET = "sk-live-4f9a1c7e2b"


def _redact_in_place(message: dict) -> int:
    """Replace SECRET in a message's text by mutating the message itself (no copy)."""
    content = message.get("content")
    if isinstance(content, str):
        if SECRET in content:
            message["content"] = content.replace(SECRET, "[redacted]")
            return 1
        return 0
    n = 0
    for block in content or ():
        if isinstance(block, dict) and block.get("type") == "text" and SECRET in block.get("text", ""):
            block["text"] = block["text"].replace(SECRET, "[redacted]")
            n += 1
    return n


class RedactInPlace(Stage):
    """Edits `x.request["messages"][-1]` in place and declares nothing about how it edits."""

    name = "test_redact_in_place"
    options_schema = {"type": "object", "additionalProperties": False, "properties": {}}

    async def run(self, x):
        _redact_in_place(x.request["messages"][-1])



class ClaimsCopyOnWrite(RedactInPlace):
    """The same in-place edit, by a stage that wrongly declares it edits copy-on-write."""

    name = "test_claims_copy_on_write"
    edits = "copy-on-write"


class BadEdits(RedactInPlace):
    name = "test_bad_edits"
    edits = "copy_on_write"
