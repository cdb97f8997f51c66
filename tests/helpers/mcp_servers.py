"""Real MCP servers for the tests, written with the SDK's FastMCP (`MCPServer` in mcp 2):

    python -m tests.helpers.mcp_servers tracker stdio
    python -m tests.helpers.mcp_servers tracker http PORT
    python -m tests.helpers.mcp_servers many stdio          # 40 tools (the catalogue benchmark)

`tracker` knows facts nothing else does (an owner per ticket), and misbehaves on request: `crash`
kills the process mid-call, `hang` never answers, `huge` returns 50 MB (or what it is asked), and `broken` advertises an
input schema that is not valid JSON Schema.
"""
from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer

OWNERS = {"TCK-4471": "Zanzibar Okonkwo-Lindqvist", "TCK-1002": "Maribel Astor"}


def tracker() -> MCPServer:
    server = MCPServer("tracker")

    @server.tool()
    def ticket_owner(ticket: str) -> str:
        """Who owns an issue-tracker ticket (by id, e.g. TCK-1002)."""
        return OWNERS.get(ticket, f"no ticket {ticket}")

    @server.tool()
    def add(a: int, b: int) -> str:
        """Adds two integers."""
        return str(a + b)

    @server.tool()
    def env_var(name: str) -> str:
        """The value of one of the server's environment variables."""
        return os.environ.get(name, "<unset>")

    @server.tool()
    def pid() -> str:
        """The server's process id."""
        return str(os.getpid())

    @server.tool()
    def crash() -> str:
        """Kills the server process mid-call."""
        os._exit(3)

    @server.tool()
    async def hang() -> str:
        """Never answers."""
        await asyncio.sleep(10**6)
        return ""

    @server.tool()
    def huge(mb: int = 50) -> str:
        """Returns `mb` MB of text."""
        return "x" * (mb * 1024 * 1024)

    @server.tool()
    def broken(q: str) -> str:
        """Advertises an invalid input schema."""
        return q

    server._tool_manager.get_tool("broken").parameters = {"type": "object", "properties": {"q": {"type": 12}}}
    return server


TOPICS = ["invoice", "customer", "shipment", "refund", "ticket", "deploy", "incident", "metric", "alert", "user"]
VERBS = ["create", "get", "list", "delete"]


def many() -> MCPServer:
    """40 tools: VERB_TOPIC, each with its own arguments; each answers with what it was given."""
    server = MCPServer("many")
    for topic in TOPICS:
        for verb in VERBS:
            server.add_tool(_tool(verb, topic), name=f"{verb}_{topic}",
                            description=f"{verb.capitalize()} a {topic} record in the back office. "
                                        f"Use it whenever the user wants to {verb} {topic}s; the record is "
                                        f"identified by its {topic}_id and the change is audited.")
    return server


def _tool(verb: str, topic: str):
    if verb == "list":
        def fn(limit: int = 10, status: str = "open", owner: str | None = None) -> str:
            return f"{verb}_{topic} limit={limit} status={status} owner={owner}"
    elif verb == "create":
        def fn(title: str, owner: str, priority: int = 3, tags: list[str] | None = None) -> str:
            return f"{verb}_{topic} title={title} owner={owner} priority={priority}"
    else:
        def fn(record_id: str, reason: str | None = None) -> str:
            return f"{verb}_{topic} record_id={record_id}"
    return fn


def main() -> None:
    which, transport = sys.argv[1], sys.argv[2]
    server = {"tracker": tracker, "many": many}[which]()
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[3]))


if __name__ == "__main__":
    main()
