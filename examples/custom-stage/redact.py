"""A project's own stage, loaded by path: `uses: ./redact.py:Redact`.

Replaces e-mail addresses in user text before the request leaves the machine.
"""
import re

from lynkr import Stage

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


class Redact(Stage):
    name = "redact"
    summary = "Replaces e-mail addresses in user messages with a placeholder."
    # It replaces the messages it changes instead of mutating them, so the JSON Lynkr remembered of
    # the request's parts stays true (docs/engine.md, "How a stage edits"). Without this line the
    # stage would be just as correct, and the request serialised once more after it.
    edits = "copy-on-write"
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"placeholder": {"type": "string", "default": "[email]", "description": "what replaces an address"}},
    }

    async def run(self, x):
        changed = 0
        messages = []
        for m in x.request.get("messages", []):
            if m.get("role") != "user":
                messages.append(m)
                continue
            blocks = []
            for b in m.get("content", []):
                if b.get("type") == "text" and EMAIL.search(b["text"]):
                    b = {**b, "text": EMAIL.sub(self.options["placeholder"], b["text"])}
                    changed += 1
                blocks.append(b)
            messages.append({**m, "content": blocks})
        if changed:
            # Copy-on-write: the client's original stays intact as the savings baseline.
            x.request = {**x.request, "messages": messages}
        x.stage_event.detail["redacted"] = changed
