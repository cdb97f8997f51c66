"""MCP servers run by the proxy, and the tool loop that offers their tools to any client's model
(docs/mcp.md): `servers` (processes and connections, the pool), `tools` (definitions, the compact
catalogue, results), `loop` (what a request gets, the answers wire/answered.py calls)."""
