"""The proxy's side of the MCP tool loop for one load: which tools a request gets, and the answer
functions `lynkr/wire/answered.py` calls when the model uses them.

Each call is bounded by `timeout_s` (a server that does not answer in time is restarted, the model
gets a tool error), its result by `max_result_chars`; the turn by `max_steps` continuations. Every
call is recorded as {tool, server, ms, outcome[, arguments]} — arguments only when the pipeline's
`telemetry.content` is on. Outcomes: ok, tool_error (the tool said so), timeout, down (the server
is not running), failed (the call broke: a crash, a closed connection), schema (compact mode: the
model asked for a schema), invalid (compact mode: arguments that do not fit the schema, or an unknown tool).
"""
from __future__ import annotations

import asyncio
import time

from lynkr.exchange import Exchange
from lynkr.wire.answered import tool_error
from lynkr.mcp.servers import McpServer, ServerDown, ToolSpec, answered_error, describe_error
from lynkr.mcp.tools import (CALL_NAME, accept, capped, check_arguments, compact_tools, full_name, full_tools,
                             result_block, schema_text)

__all__ = ["McpTools"]


class McpTools:
    def __init__(self, servers: list[McpServer], *, catalogue: str = "full", timeout_s: float = 30.0,
                 max_result_chars: int = 100_000, record_arguments: bool = False):
        self.servers = sorted(servers, key=lambda s: s.name)
        self.catalogue = catalogue
        self.timeout_s = timeout_s
        self.max_result_chars = max_result_chars
        self.record_arguments = record_arguments
        self._accepts = {s.name: accept(s.spec.get("allow")) for s in self.servers}
        self._made: tuple[tuple, list[dict], dict[str, ToolSpec]] | None = None

    async def offered(self) -> tuple[list[dict], dict[str, ToolSpec]]:
        """(tool definitions for the request, full name -> tool), starting servers that are due."""
        await asyncio.gather(*(s.ensure(self._accepts[s.name]) for s in self.servers))
        listings = tuple(s.tools for s in self.servers)
        made = self._made
        if made is not None and len(made[0]) == len(listings) and all(a is b for a, b in zip(made[0], listings)):
            return made[1], made[2]     # the same objects every turn: same bytes, and the Body's JSON is reused
        tools = [t for listing in listings for t in listing]
        by_name = {full_name(t.server, t.name): t for t in tools}
        defs = compact_tools(tools) if self.catalogue == "compact" and tools else full_tools(tools)
        self._made = (listings, defs, by_name)
        return defs, by_name

    def answers(self, by_name: dict[str, ToolSpec], calls: list[dict]) -> dict:
        """name -> answer function for wire/answered.py; each call is appended to `calls`."""
        if self.catalogue == "compact":
            async def via_catalogue(x: Exchange, block: dict) -> dict:
                return await self._catalogue_call(x, block, by_name, calls)
            return {CALL_NAME: via_catalogue} if by_name else {}

        def answer_for(spec: ToolSpec):
            async def answer(x: Exchange, block: dict) -> dict:
                return await self._call(spec, block, block.get("input") or {}, calls)
            return answer
        return {name: answer_for(spec) for name, spec in by_name.items()}

    async def _catalogue_call(self, x: Exchange, block: dict, by_name: dict, calls: list) -> dict:
        inp = block.get("input") or {}
        name = str(inp.get("tool") or "")
        spec = by_name.get(name) or by_name.get(f"mcp__{name}")
        if spec is None:
            calls.append(self._record(name or "?", "?", 0.0, "invalid", inp))
            return tool_error(block, f"no MCP tool is called {name!r}; the {CALL_NAME} description lists them")
        arguments = inp.get("arguments")
        if arguments is None:
            calls.append(self._record(spec.name, spec.server, 0.0, "schema", None))
            return {"type": "tool_result", "tool_use_id": block.get("id"), "content": schema_text(spec)}
        problem = check_arguments(spec, arguments)
        if problem:
            calls.append(self._record(spec.name, spec.server, 0.0, "invalid", arguments))
            return tool_error(block, f"{problem}\n{schema_text(spec)}")
        return await self._call(spec, block, arguments, calls)

    async def _call(self, spec: ToolSpec, block: dict, arguments: dict, calls: list) -> dict:
        server = next(s for s in self.servers if s.name == spec.server)
        t0 = time.perf_counter()
        try:
            result = await server.call(spec.name, arguments, self.timeout_s)
        except ServerDown as e:
            return self._failed(server, spec, block, arguments, calls, t0, "down", str(e))
        except asyncio.TimeoutError:
            await server.failed(f"a call to {spec.name} got no answer within {self.timeout_s:g} s")
            return self._failed(server, spec, block, arguments, calls, t0, "timeout",
                                f"{spec.server}__{spec.name} did not answer within {self.timeout_s:g} s")
        except Exception as e:      # the process died mid-call, the connection closed, an error response
            if not answered_error(e):       # the server itself is still fine after an error response
                await server.failed(f"a call to {spec.name} failed: {describe_error(e)}")
            return self._failed(server, spec, block, arguments, calls, t0, "failed",
                                f"{spec.server}__{spec.name} failed: {capped(describe_error(e), 500)}")
        outcome = "tool_error" if result.is_error else "ok"
        server.count(outcome)
        calls.append(self._record(spec.name, spec.server, t0, outcome, arguments))
        return result_block(block, result, self.max_result_chars)

    def _failed(self, server, spec, block, arguments, calls, t0, outcome, message) -> dict:
        server.count(outcome)
        calls.append(self._record(spec.name, spec.server, t0, outcome, arguments))
        return tool_error(block, message)

    def _record(self, tool: str, server: str, t0: float, outcome: str, arguments) -> dict:
        ms = round((time.perf_counter() - t0) * 1000, 1) if t0 else 0.0
        rec = {"tool": tool, "server": server, "ms": ms, "outcome": outcome}
        if self.record_arguments and arguments is not None:
            rec["arguments"] = arguments
        return rec
