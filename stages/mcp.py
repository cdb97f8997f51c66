"""mcp: offer the tools of the pipeline's MCP servers (the top-level `mcp:` section) to the model,
and answer the model's calls to them in the proxy — for any client, which never sees those calls.

    mcp:
      servers:
        tracker: {command: [python, tracker_server.py], env: {TRACKER_TOKEN: "{{ env.TRACKER_TOKEN }}"}}
        docs: {url: "http://docs.internal:8000/mcp", allow: [search]}
      catalogue: compact          # full (every schema) | compact (one mcp_call tool and a catalogue)
    stages:
      - {id: mcp, uses: mcp}      # before provider_call
      - {id: call, uses: provider_call, with: {to: "anthropic:claude-sonnet-4-5"}}

Tools are namespaced `mcp__<server>__<tool>` and appended after the client's own, in a fixed order,
so the request's prefix stays the same turn after turn. A tool name the client already has is the
client's. The loop itself is lynkr/wire/answered.py (the proxy answers, continues the turn upstream
and splices the continuation into the same response, streamed or not); servers, catalogue and
calls are lynkr/mcp/. `detail.calls` in telemetry lists every call (docs/mcp.md).
"""
from __future__ import annotations

from lynkr.exchange import Exchange
from lynkr.wire.answered import answering
from lynkr.mcp.loop import McpTools
from lynkr.mcp.servers import pool_for
from lynkr.stage import Stage


class Mcp(Stage):
    name = "mcp"
    edits = "copy-on-write"
    summary = "Offers the tools of the pipeline's `mcp:` servers to the model and runs its calls in the proxy."
    options_schema = {"type": "object", "additionalProperties": False, "properties": {}}
    examples = ["- {id: mcp, uses: mcp}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        conf = ctx.config.get("mcp") or {}
        for name, spec in (conf.get("servers") or {}).items():
            if bool(spec.get("command")) == bool(spec.get("url")) or (spec.get("url") and ("env" in spec or "cwd" in spec)):
                raise ctx.cfg.error("a server is either {command: [prog, arg…], env, cwd} (stdio) or {url: …} "
                                    "(streamable HTTP)", ("mcp", "servers", name))
        self.max_steps = int(conf.get("max_steps", 8))
        self.pool = pool_for(ctx.shared)
        servers = [] if ctx.dry_run else [
            self.pool.acquire(name, spec) for name, spec in sorted((conf.get("servers") or {}).items())]
        self.tools = McpTools(servers, catalogue=conf.get("catalogue", "full"),
                              timeout_s=float(conf.get("timeout_s", 30)),
                              max_result_chars=int(conf.get("max_result_chars", 100_000)),
                              record_arguments=bool((ctx.config.get("telemetry") or {}).get("content")))

    async def run(self, x: Exchange) -> None:
        if x.dry_run or not self.tools.servers:
            return
        defs, by_name = await self.tools.offered()
        theirs = {t.get("name") for t in x.request.get("tools") or []}
        defs = [d for d in defs if d["name"] not in theirs]
        if not defs:
            return
        calls: list[dict] = []
        x.stage_event.detail["calls"] = calls        # filled as the model calls; written once the turn ends
        x.stage_event.detail["tools"] = len(by_name)
        x.request = {**x.request, "tools": list(x.request.get("tools") or []) + defs}
        answers = {n: a for n, a in self.tools.answers(by_name, calls).items() if n not in theirs}
        x.interceptors.append(answering(answers, counter="mcp_calls", max_rounds=self.max_steps))

    async def aclose(self) -> None:
        servers, self.tools.servers = self.tools.servers, []
        for s in servers:
            await self.pool.release(s)
