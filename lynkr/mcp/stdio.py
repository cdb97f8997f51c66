"""A stdio transport for the MCP SDK's Client that bounds what a server can make the proxy read.

The SDK's own stdio reader joins every chunk of a line onto what it has so far and splits again,
so one 50 MB message costs the proxy's event loop seconds of copying before anything can cap it.
This one scans a bytearray once, and a line longer than `max_line_bytes` is dropped as it arrives:
when its JSON-RPC id is in the first bytes (it always is for the SDK's servers: jsonrpc, id, result)
the pending request gets an error response saying the result was too large; otherwise the
connection is closed, which fails the request and restarts the server. Only the server's stderr
is passed through to ours; the process runs in its own session and is killed as a group.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys

import anyio
import mcp_types as types
from mcp.client.stdio import get_default_environment
from mcp.os.posix.utilities import terminate_posix_process_tree
from mcp.shared.message import SessionMessage

__all__ = ["capped_stdio"]

log = logging.getLogger("lynkr.mcp")

_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.){0,200}")')
_CHUNK = 1 << 16


@contextlib.asynccontextmanager
async def capped_stdio(command: list[str], env: dict[str, str], cwd: str | None, max_line_bytes: int):
    process = await anyio.open_process(command, env={**get_default_environment(), **env}, cwd=cwd,
                                       stderr=sys.stderr, start_new_session=True)
    to_client, read_stream = anyio.create_memory_object_stream(0)
    write_stream, from_client = anyio.create_memory_object_stream(0)

    async def reader() -> None:
        async with to_client:
            async for item in _messages(process.stdout, max_line_bytes):
                await to_client.send(item)

    async def writer() -> None:
        async with from_client:
            async for message in from_client:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                await process.stdin.send(data.encode())

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_quietly, reader)
            tg.start_soon(_quietly, writer)
            try:
                yield read_stream, write_stream
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process)


async def _messages(stdout, cap: int):
    """SessionMessages (or parse errors) from the server's stdout, one line each."""
    buf = bytearray()
    scanned = 0
    dropping: bytes | None = None      # the head of an oversized line being skipped
    while True:
        try:
            chunk = await stdout.receive(_CHUNK)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return
        buf += chunk
        while True:
            nl = buf.find(b"\n", scanned)
            if nl < 0:
                scanned = len(buf)
                if dropping is None and len(buf) > cap:
                    dropping = bytes(buf[:512])
                if dropping is not None:
                    buf.clear()
                    scanned = 0
                break
            line = bytes(buf[:nl])
            del buf[:nl + 1]
            scanned = 0
            if dropping is not None:
                head, dropping = dropping, None
                answer = _too_large(head, cap)
                if answer is None:
                    log.warning("an MCP server sent a message over %d bytes without an id; closing it", cap)
                    return
                yield answer
            elif len(line) > cap:
                answer = _too_large(line[:512], cap)
                if answer is None:
                    return
                yield answer
            elif line.strip():
                yield _parse(line)


def _too_large(head: bytes, cap: int) -> SessionMessage | None:
    m = _ID.search(head)
    if m is None:
        return None
    rid = m.group(1).decode()
    body = ('{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"the result was larger than %d bytes; '
            'the proxy dropped it"}}' % (rid, cap))
    return _parse(body.encode())


def _parse(line: bytes):
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as e:
        return e


async def _quietly(fn) -> None:
    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        await fn()


async def _stop(process) -> None:
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.aclose()
    with anyio.move_on_after(2):
        while process.returncode is None:
            await anyio.sleep(0.05)
    if process.returncode is None:
        with contextlib.suppress(Exception):
            await terminate_posix_process_tree(process, 2.0)
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdout.aclose()
