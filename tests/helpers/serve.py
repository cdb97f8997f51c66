"""Run `lynkr run` as a real subprocess (for signal and multi-process tests)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import aiohttp


def start_lynkr(pipeline, port: int, *, env: dict | None = None, cwd=None, args=(), quiet: bool = True
                ) -> subprocess.Popen:
    """`lynkr run` with its output in pipes. Quiet by default: a line per request would fill a pipe
    that nobody reads under load and stall the server."""
    e = {**os.environ, **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "lynkr.cli", "run", str(pipeline), "--port", str(port),
                             "--no-reload", *(["--quiet"] if quiet else []), *args], env=e, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"lynkr exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                async with s.get(url + "/health/ready") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("lynkr did not become ready")


# One Anthropic upstream, provider_call only, telemetry to a file flushed every 0.2 s:
# PIPE % (upstream_url, telemetry_path). BODY is a small request for it.
PIPE = """
version: 1
name: tele
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
telemetry: {path: "%s", flush_interval_s: 0.2}
"""
BODY = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hello there"}]}
