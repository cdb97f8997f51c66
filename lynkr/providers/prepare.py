"""Per-target fixes shared by the non-Anthropic adapters (protocols.md §9): Claude Code's billing
block, tool names other APIs reject, JSON Schema keywords a target rejects, max_tokens limits,
same-role turns. Pure functions over canonical data; nothing here does I/O."""
from __future__ import annotations

import hashlib
import re

import orjson

__all__ = ["strip_billing", "ToolNames", "prune_schema", "clamp_max_tokens", "merge_same_role", "block_text",
           "system_text", "tool_result_text", "stop_reason"]

_BILLING = "x-anthropic-billing-header:"
_NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def strip_billing(system: list | None) -> list:
    """Claude Code puts a per-request `x-anthropic-billing-header: cc_version=…; cch=…` text block
    first in `system`. It changes every request, so for any upstream with prefix caching it turns
    every prompt into a cache miss; only Anthropic itself reads it."""
    return [b for b in (system or []) if not (b.get("type") == "text" and
                                              str(b.get("text", "")).lstrip().startswith(_BILLING))]


class ToolNames:
    """Tool names over 64 characters (Claude Code's MCP tools) or with characters outside
    [A-Za-z0-9_-] mapped to a legal name and back. Deterministic, so the same long name maps the
    same way on every turn of a conversation without any stored state."""

    def __init__(self):
        self.back: dict[str, str] = {}

    def out(self, name: str) -> str:
        if _NAME_OK.match(name or ""):
            return name
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name or "tool")
        if len(safe) > 64 or safe != name:
            digest = hashlib.sha1(name.encode()).hexdigest()[:8]
            safe = safe[:55] + "_" + digest
        self.back[safe] = name
        return safe

    def back_to(self, name: str) -> str:
        return self.back.get(name, name)


def prune_schema(schema, *, drop: frozenset = frozenset(), keep: frozenset | None = None):
    """A copy of a JSON Schema without the keywords a target rejects. `keep` (when given) is the
    only keywords allowed at each schema node; property *names* are never touched."""
    if isinstance(schema, list):
        return [prune_schema(s, drop=drop, keep=keep) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k in drop or (keep is not None and k not in keep):
            continue
        if k in ("properties", "$defs", "definitions", "patternProperties") and isinstance(v, dict):
            out[k] = {name: prune_schema(sub, drop=drop, keep=keep) for name, sub in v.items()}
        elif k in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties", "prefixItems"):
            out[k] = prune_schema(v, drop=drop, keep=keep)
        else:
            out[k] = v
    return out


def clamp_max_tokens(requested, limit: int | None, default: int | None = None):
    if requested is None:
        return default
    if limit and requested > limit:
        return limit
    return requested


def merge_same_role(messages: list[dict]) -> list[dict]:
    """Consecutive turns of one role joined into one (Bedrock and Gemini require alternation)."""
    out: list[dict] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"]:
            out[-1] = {**out[-1], "content": list(out[-1]["content"]) + list(m["content"])}
        else:
            out.append(m)
    return out


def block_text(block: dict) -> str:
    t = block.get("type")
    if t == "text":
        return block.get("text", "")
    if t == "image":
        return "[image]"
    if t == "document":
        return "[document]"
    return ""


def system_text(system: list | None) -> str:
    return "\n\n".join(b.get("text", "") for b in strip_billing(system) if b.get("type") == "text" and b.get("text"))


def tool_result_text(block: dict) -> str:
    """A tool_result's content as text: a string, a list of blocks, or missing."""
    c = block.get("content")
    if c is None:
        return ""
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return "\n".join(b.get("text", "") if b.get("type") == "text" else
                         ("[image]" if b.get("type") == "image" else orjson.dumps(b).decode()) for b in c)
    return orjson.dumps(c).decode()


def stop_reason(native: str | None, tool_called: bool, table: dict) -> str:
    """Upstream stop reason → Anthropic's; `tool_use` whenever a tool was called (Ollama and some
    OpenAI-compatible servers say "stop")."""
    if tool_called:
        return "tool_use"
    return table.get(native or "", "end_turn")
