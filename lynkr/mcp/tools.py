"""What the model sees of the MCP tools, and what it gets back from them.

- `accept(allow)` filters a server's listing: the allow-list, a name that fits the providers' tool
  name rules once namespaced `mcp__<server>__<tool>` (64 characters of [A-Za-z0-9_-]), and an input
  schema that is a valid JSON Schema object; a tool that fails is left out and said why.
- `full_tools(servers)` is every tool's definition, namespaced; `compact_tools(servers)` is one
  `mcp_call` tool whose description is the catalogue (a name and one sentence per tool): the model asks
  for a tool's schema by calling it without `arguments`. Both are built in a fixed order (servers
  and tools by name) and cached per listing, so the same bytes go upstream on every turn.
- `result_block(block, result, cap)` turns a CallToolResult into a tool_result, cut at `cap`
  characters with a note saying so.
"""
from __future__ import annotations

import json
import re

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from lynkr.mcp.servers import ToolSpec

__all__ = ["accept", "full_name", "full_tools", "compact_tools", "CALL_NAME", "result_block", "check_arguments",
           "schema_text", "one_line"]

CALL_NAME = "mcp_call"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def full_name(server: str, tool: str) -> str:
    return f"mcp__{server}__{tool}"


def accept(allow: list[str] | None):
    """The listing filter for a server whose `allow` list is `allow` (None: every tool)."""
    allowed = set(allow) if allow else None

    def filter_(server, listed) -> tuple[list[ToolSpec], dict[str, str]]:
        offered, rejected = [], {}
        for t in listed:
            if allowed is not None and t.name not in allowed:
                continue
            why = _problem(server.name, t.name, t.input_schema)
            if why:
                rejected[t.name] = why
                continue
            offered.append(ToolSpec(server.name, t.name, (t.description or "").strip(), t.input_schema))
        return sorted(offered, key=lambda t: t.name), rejected
    return filter_


def _problem(server: str, tool: str, schema) -> str | None:
    if not _NAME.match(full_name(server, tool)):
        return f"name {full_name(server, tool)!r} is not 1-64 characters of letters, digits, _ and -"
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return "input schema is not a JSON Schema with type 'object'"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        return f"input schema is invalid: {e.message[:200]}"
    return None


def one_line(text: str, limit: int = 100) -> str:
    """The description's first sentence (or line), at most `limit` characters."""
    line = (text or "").strip().split("\n", 1)[0].strip()
    line = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def full_tools(tools: list[ToolSpec]) -> list[dict]:
    return [{"name": full_name(t.server, t.name), "description": t.description or t.name,
             "input_schema": t.input_schema} for t in tools]


def compact_tools(tools: list[ToolSpec]) -> list[dict]:
    lines = "\n".join(f"- {t.server}__{t.name}: {one_line(t.description) or t.name}" for t in tools)
    return [{
        "name": CALL_NAME,
        "description": ("Calls a tool of the proxy's MCP servers. Call it with only `tool` to get that tool's "
                        "argument schema, then with `tool` and `arguments`. Tools:\n" + lines),
        "input_schema": {"type": "object", "properties": {
            "tool": {"type": "string", "description": "a name from the list, e.g. server__tool"},
            "arguments": {"type": "object", "description": "the tool's arguments; leave out to get its schema"}},
            "required": ["tool"]},
    }]


def schema_text(t: ToolSpec) -> str:
    return (f"{t.server}__{t.name}: {t.description or t.name}\narguments schema: "
            f"{json.dumps(t.input_schema, ensure_ascii=False, sort_keys=True)}\n"
            f"Call {CALL_NAME} again with tool and arguments.")


def check_arguments(t: ToolSpec, arguments) -> str | None:
    """Why `arguments` do not fit the tool's schema (None: they do)."""
    if not isinstance(arguments, dict):
        return "arguments must be a JSON object"
    errors = sorted(Draft202012Validator(t.input_schema).iter_errors(arguments), key=lambda e: list(e.path))
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.path) or "arguments"
    return f"{where}: {e.message[:300]}"


def result_block(block: dict, result, cap: int) -> dict:
    """The tool_result for `block` from an MCP CallToolResult, at most `cap` characters of text."""
    parts = []
    for c in result.content or []:
        kind = getattr(c, "type", None)
        if kind == "text":
            parts.append(c.text)
        elif kind == "resource" and getattr(getattr(c, "resource", None), "text", None) is not None:
            parts.append(c.resource.text)
        else:
            parts.append(f"[{kind} content left out]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return {"type": "tool_result", "tool_use_id": block.get("id"), "content": capped("\n".join(parts), cap),
            **({"is_error": True} if result.is_error else {})}


def capped(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    return text[:cap] + f"\n[lynkr: result cut at {cap} of {len(text)} characters]"
