"""The request bodies of benchmarks/overhead.py (and ttfb_paired.py): a small request and the 62 KB
Claude Code request, as the clients send them, each carrying MARK once so every request can be
made unique (tests/test_performance.py checks that)."""
from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURE = ROOT.parent / "shared" / "fixtures" / "claude-code" / "fix-negative-stock" / "req_004.json"

SMALL = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Say ok."}]}
# Replaced by a per-request counter, so every request is new (the exact cache misses, as it would on
# an agent's next turn); the `lynkr-cachehit` path sends the body unchanged instead.
MARK = "LYNKRBENCHN"
TOOLS = [
    {"name": "Bash", "description": "Run a shell command.",
     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}},
    {"name": "Read", "description": "Read a file.",
     "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}},
]


def workload_bodies() -> dict[str, bytes]:
    """Each body holds MARK once, so on default.yaml the exact cache misses; on `small` the semantic
    cache embeds the question and finds a neighbour the guard refuses (the numbers differ) — a real
    miss, paid in full. The 62 KB Claude Code request (a tool loop's fifth turn) is sent two ways:
    `cc62k` appends a text block to its last user message, so every request is a new thing the user
    said and the router and strip_tools read new words; `cc62k-loop` puts MARK in its last tool
    result instead, as the loop's next turn would (a new tool output, the user's words unchanged:
    most of the requests an agent sends).

    Bodies are written as the clients write them: compact JSON in UTF-8, JSON.stringify's form
    (Claude Code) and serde_json's (Codex). Python's default `json.dumps` adds a space after every
    `:` and `,` and escapes non-ASCII characters; the 62 KB body was 66 KB that way, a form no
    coding agent sends. `LYNKR_BENCH_JSON=python` sends that form instead, to
    compare with figures measured that way."""
    small = {**SMALL, "messages": [{"role": "user", "content": f"Say ok. (request {MARK})"}]}
    bodies = {"small": _as_sent(small)}
    if FIXTURE.is_file():
        body = json.loads(FIXTURE.read_text())["body"]
        body["stream"] = False
        last = body["messages"][-1]
        content = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
        loop = json.loads(json.dumps(body))
        last["content"] = content + [{"type": "text", "text": f"(request {MARK})"}]
        bodies["cc62k"] = _as_sent(body)
        result = next(b for b in reversed(loop["messages"][-1]["content"]) if b.get("type") == "tool_result")
        if isinstance(result.get("content"), str):
            result["content"] += f"\n(request {MARK})"
        else:
            result["content"] = [*(result.get("content") or []), {"type": "text", "text": f"(request {MARK})"}]
        bodies["cc62k-loop"] = _as_sent(loop)
    bodies["stream"] = _as_sent({**small, "stream": True})
    # The same stream with two declared tools, so a pipeline that recovers tool calls written as
    # text has tools to recover (with none declared it would not scan the answer at all).
    bodies["stream-tools"] = _as_sent({**small, "stream": True, "tools": TOOLS})
    return bodies


def _as_sent(body: dict) -> bytes:
    if os.environ.get("LYNKR_BENCH_JSON") == "python":
        return json.dumps(body).encode()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def fixed(body: bytes) -> bytes:
    """The same body every time (the cache-hit path)."""
    return body.replace(MARK.encode(), b"0")
