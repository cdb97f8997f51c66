"""`lynkr demo`: serve the shipped demo pipeline (the built-in `demo` provider: no key, no network),
or with `--check` prove in a few seconds that this installation answers every client protocol.

    lynkr demo                 # serve pipelines/demo.yaml on 127.0.0.1:8081, dashboard on
    lynkr demo --check         # one request per protocol, streaming and not, and a tool loop
"""
from __future__ import annotations

import asyncio
import os
import secrets
import tempfile

from lynkr.cli import add_log_arguments, command, shipped_pipelines

__all__ = ["cmd_demo", "demo_checks"]


@command
def cmd_demo(args) -> int:
    """Try Lynkr without a key: the demo provider answers, tool calls included (--check: self-test)."""
    path = str(shipped_pipelines() / "demo.yaml")
    if args.check:
        return asyncio.run(_check(path))
    # The dashboard needs an admin token; the demo makes one up so the first screen can link to it.
    os.environ.setdefault("LYNKR_ADMIN_TOKEN", secrets.token_urlsafe(12))
    from lynkr.server.run import serve_forever
    return serve_forever(path, port=args.port, host=args.host, workers=1, watch=False,
                         log_level=args.log_level, log_format=args.log_format)


def _configure(p) -> None:
    p.add_argument("--check", action="store_true",
                   help="answer one request per protocol (streaming and not) and a tool loop, then exit 0 or 1")
    p.add_argument("--port", type=int, help="overrides the demo's port (8081, or $PORT)")
    p.add_argument("--host", help="overrides the demo's host (127.0.0.1)")
    add_log_arguments(p)


cmd_demo.configure = _configure

_TOOLS = [{"name": "Bash", "description": "Run a shell command",
           "input_schema": {"type": "object", "properties": {"command": {"type": "string"},
                                                             "description": {"type": "string"}},
                            "required": ["command"]}}]
_ASK = "list the files here"


def demo_checks() -> list[tuple[str, str, dict, callable]]:
    """(what, path, body, does the answer look right) for each protocol, streaming and not."""
    chat_tools = [{"type": "function", "function": {"name": "Bash", "parameters": _TOOLS[0]["input_schema"]}}]
    resp_tools = [{"type": "function", "name": "exec_command",
                   "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}]
    return [
        ("Anthropic Messages", "/v1/messages",
         {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]},
         lambda t: '"type":"message"' in t and "demo provider" in t),
        ("Anthropic Messages, streaming", "/v1/messages",
         {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
         lambda t: "event:message_stop" in t),
        ("Anthropic tool call", "/v1/messages",
         {"model": "claude-sonnet-4-5", "max_tokens": 64, "tools": _TOOLS, "messages": [{"role": "user", "content": _ASK}]},
         lambda t: '"tool_use"' in t and '"command":"ls"' in t),
        ("Anthropic text after the tool result", "/v1/messages",
         {"model": "claude-sonnet-4-5", "max_tokens": 64, "tools": _TOOLS, "messages": [
             {"role": "user", "content": _ASK},
             {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "README.md\nsrc"}]}]},
         lambda t: '"end_turn"' in t and "README.md" in t),
        ("OpenAI Chat Completions", "/v1/chat/completions",
         {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]},
         lambda t: '"chat.completion"' in t),
        ("OpenAI Chat Completions, streaming, tool call", "/v1/chat/completions",
         {"model": "gpt-4o", "stream": True, "tools": chat_tools, "messages": [{"role": "user", "content": _ASK}]},
         lambda t: "tool_calls" in t and "[DONE]" in t),
        ("OpenAI Responses", "/v1/responses", {"model": "gpt-5-codex", "input": "hello"},
         lambda t: '"object":"response"' in t),
        ("OpenAI Responses, streaming, tool call", "/v1/responses",
         {"model": "gpt-5-codex", "stream": True, "tools": resp_tools, "input": _ASK},
         lambda t: "response.completed" in t and "function_call" in t),
    ]


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _check(path: str) -> int:
    import aiohttp

    from lynkr.engine.runtime import Engine
    from lynkr.server.app import create_app

    failed = 0
    with tempfile.TemporaryDirectory(prefix="lynkr-demo-check-") as tmp:
        env = {**os.environ, "LYNKR_STATE_DIR": tmp, "LYNKR_TELEMETRY": os.path.join(tmp, "telemetry.duckdb")}
        engine = Engine(path, environ=env, watch=False)
        await engine.start()
        from aiohttp import web
        runner = web.AppRunner(create_app(engine, manage_engine=False), access_log=None)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as s:
                for what, url, body, looks_right in demo_checks():
                    async with s.post(url, json=body, headers={"x-lynkr-cache": "bypass"}) as r:
                        text = await r.text()
                    ok = r.status == 200 and looks_right(text.replace(": ", ":"))
                    failed += not ok
                    print(f"{'✓' if ok else '✗'} {what}" + ("" if ok else f": HTTP {r.status} {text[:300]}"))
        finally:
            await runner.cleanup()
            await engine.stop()
        rows = getattr(engine.writer, "written", 0)
        ok = rows >= len(demo_checks())
        failed += not ok
        print(f"{'✓' if ok else '✗'} telemetry: {rows} rows written")
    print("✓ the demo works: `lynkr demo` serves it" if not failed else f"✗ {failed} check(s) failed")
    return 1 if failed else 0
