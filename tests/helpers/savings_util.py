"""Helpers for the savings stages' tests (toon, strip_tools, crush, replay)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from lynkr.exchange import Exchange
from lynkr.stage import BuildContext

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "benchmarks" / "data"


def build_stage(cls, stage_id: str | None = None, dry_run: bool = False, state_dir: str = ".lynkr", **options):
    """A stage built outside a pipeline, with its defaults merged like the engine does."""
    ctx = BuildContext(pipeline_name="t", pipeline_hash="", config={}, stage_id=stage_id or cls.name,
                       dry_run=dry_run, state_dir=state_dir)
    return cls({**cls.defaults(), **options}, ctx)


def request_with_results(payloads: list, names: list[str] | None = None, ask: str = "look at this") -> dict:
    """[user ask, assistant tool_use 0, user tool_result 0, assistant tool_use 1, …]: result i is
    messages[2 + 2i]."""
    messages = [{"role": "user", "content": [{"type": "text", "text": ask}]}]
    for i, p in enumerate(payloads):
        tid = f"toolu_{i:04d}"
        name = names[i] if names else "Bash"
        messages.append({"role": "assistant", "content": [{"type": "tool_use", "id": tid, "name": name,
                                                           "input": {"command": f"step {i}"}}]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": p}]})
    return {"model": "claude-test", "max_tokens": 100, "messages": messages}


def result(request: dict, i: int = 0):
    return request["messages"][2 + 2 * i]["content"][0]["content"]


def run_stage(stage, request: dict, session: str | None = None) -> Exchange:
    x = Exchange.new("anthropic", request, session=session)
    x.start_stage(stage.id, stage.name)
    asyncio.run(stage.run(x))
    return x
