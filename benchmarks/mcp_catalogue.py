"""MCP tool definitions: what the compact catalogue saves, and whether a model still calls the
right tool with the right arguments.

    . ../shared/env.sh && python -m benchmarks.mcp_catalogue

A real MCP server (tests/helpers/mcp_servers.py `many`: 40 tools, VERB_TOPIC, each with its own
arguments) runs over stdio through lynkr/mcp. For both catalogue modes the script counts the
cl100k tokens of the tool definitions the proxy adds to every request (the JSON the upstream
gets), then plays 40 tasks, one per tool, with a scripted model that sees only those definitions:
it picks the tool whose name and description share the most words with the task (a word of the
name counting twice), asks for the
schema when the mode hides it (compact: `mcp_call {tool}`), fills the required and the named
arguments from the task's values, and calls. A task passes when the server ran the intended tool
with the intended arguments (the tool echoes what it got). The model is a script, not an LLM: the
figure says the catalogue keeps enough for a name-and-description match and a schema lookup to
work, not how a given LLM behaves.
"""
from __future__ import annotations

import asyncio
import json
import re
import sys

from lynkr.kit.tokens import count_text
from lynkr.mcp.loop import McpTools
from lynkr.mcp.servers import McpServer
from lynkr.mcp.tools import CALL_NAME
from tests.helpers.mcp_servers import TOPICS, VERBS

_WORD = re.compile(r"[a-z]+")


def tasks() -> list[dict]:
    out = []
    for i, topic in enumerate(TOPICS):
        for verb in VERBS:
            if verb == "create":
                values = {"title": f"{topic} {i} review", "owner": "dana", "priority": 1 + i % 5}
            elif verb == "list":
                values = {"limit": 5 + i, "status": "closed"}
            else:
                values = {"record_id": f"{topic[:3].upper()}-{100 + i}"}
            out.append({"ask": f"Please {verb} {topic}s: {json.dumps(values)}", "tool": f"{verb}_{topic}",
                        "values": values})
    return out


def words(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower())}


def pick(task: dict, choices: dict[str, str]) -> str:
    """The choice (name -> text) sharing the most words with the ask, a word of the name counting
    twice one of the description."""
    ask = words(task["ask"].split(":")[0])
    return max(choices, key=lambda n: 2 * len(ask & words(n.replace("_", " "))) + len(ask & words(choices[n])))


def fill(schema: dict, values: dict) -> dict:
    props = schema.get("properties") or {}
    return {k: v for k, v in values.items() if k in props}


async def play(tools: McpTools, defs: list[dict], by_name: dict, task: dict) -> tuple[bool, int]:
    calls: list[dict] = []
    answers = tools.answers(by_name, calls)
    if tools.catalogue == "compact":
        lines = dict(re.findall(r"^- (\S+): (.*)$", defs[0]["description"], re.M))
        name = pick(task, lines)
        got = await answers[CALL_NAME](None, {"id": "t1", "input": {"tool": name}})
        schema = json.loads(got["content"].split("arguments schema: ", 1)[1].split("\n", 1)[0])
        result = await answers[CALL_NAME](None, {"id": "t2", "input": {"tool": name, "arguments": fill(schema, task["values"])}})
        rounds = 2
    else:
        name = pick(task, {d["name"]: d["description"] for d in defs})
        schema = next(d["input_schema"] for d in defs if d["name"] == name)
        result = await answers[name](None, {"id": "t1", "input": fill(schema, task["values"])})
        rounds = 1
    text = result["content"] if isinstance(result["content"], str) else ""
    ok = (not result.get("is_error") and text.startswith(task["tool"] + " ")
          and all(f"{k}={v}" in text for k, v in task["values"].items() if k in ("record_id", "title", "owner", "limit", "status")))
    return ok, rounds


async def main() -> int:
    server = McpServer("many", {"command": [sys.executable, "-m", "tests.helpers.mcp_servers", "many", "stdio"]})
    rows = []
    try:
        for mode in ("full", "compact"):
            tools = McpTools([server], catalogue=mode)
            defs, by_name = await tools.offered()
            tokens = count_text(json.dumps(defs, ensure_ascii=False))
            results = [await play(tools, defs, by_name, t) for t in tasks()]
            rows.append((mode, len(by_name), tokens, sum(ok for ok, _ in results), sum(r for _, r in results)))
    finally:
        await server.stop()
    print(f"{'catalogue':<10} {'tools':>5} {'definition tokens':>18} {'right tool+args':>16} {'tool calls':>10}")
    for mode, n, tokens, ok, rounds in rows:
        print(f"{mode:<10} {n:>5} {tokens:>18} {ok:>13}/40 {rounds:>10}")
    full, compact = rows[0][2], rows[1][2]
    print(f"compact saves {full - compact} of {full} definition tokens per request ({100 * (full - compact) / full:.1f} %)")
    return 0 if all(r[3] == 40 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
