"""Request shapes for routing tests, built from the recorded Claude Code session so the harness's
real oddities (system-reminder blocks, a system-role message, 12 tools, tool loops) are present."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

from lynkr.exchange import Exchange
from lynkr.stage import BuildContext

FIXTURES = Path(os.environ.get("LYNKR_FIXTURES", Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"))
SESSION = FIXTURES / "claude-code" / "fix-negative-stock"


def claude_code(n: int) -> tuple[dict, dict]:
    """(headers, body) of request n of the recorded Claude Code session."""
    data = json.loads((SESSION / f"req_{n:03d}.json").read_text())
    return {k.lower(): v for k, v in data["headers"].items()}, data["body"]


def user_request(text: str, **kw) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024,
            "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}], **kw}


def build_stage(cls, options: dict | None = None, config: dict | None = None):
    ctx = BuildContext(pipeline_name="t", pipeline_hash="", config=config or {}, stage_id=cls.name, dry_run=True)
    return cls({**cls.defaults(), **(options or {})}, ctx)


async def run_stage(stage, body: dict, session: str | None = None, headers: dict | None = None) -> Exchange:
    from lynkr.wire import anthropic
    x = Exchange.new("anthropic", anthropic.to_canonical(copy.deepcopy(body)), session=session, headers=headers or {})
    x.start_stage(stage.id, stage.name)
    await stage.run(x)
    return x
