"""A client that closes the connection mid-stream (Ctrl-C in Claude Code, a killed Codex) is a
normal event: no 500 and traceback in the log, the upstream stream is closed, the server goes on."""
import asyncio
import logging

import aiohttp
import pytest

from tests.helpers.anthropic_upstream import text_message
from tests.helpers.cache_clients import pipeline

BODIES = {
    "/v1/messages": {"model": "claude-test", "max_tokens": 50, "stream": True,
                     "messages": [{"role": "user", "content": "Tell me a long story."}]},
    "/v1/chat/completions": {"model": "claude-test", "stream": True,
                             "messages": [{"role": "user", "content": "Tell me a long story."}]},
}


@pytest.mark.parametrize("path", list(BODIES))   # verbatim Anthropic bytes; the chat event path
async def test_a_client_leaving_mid_stream_is_logged_quietly(path, anthropic_upstream, write_pipeline, lynkr,
                                                              tmp_path, caplog):
    anthropic_upstream.script = lambda body: text_message("once upon a time " * 100)
    anthropic_upstream.chunk_delay = 0.02
    engine, url = await lynkr(write_pipeline(pipeline(anthropic_upstream.url, tmp_path, "")))
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    async with aiohttp.ClientSession() as s:
        r = await s.post(url + path, json=BODIES[path], headers={"anthropic-version": "2023-06-01"})
        assert r.status == 200
        assert await r.content.readany()            # the stream has started
        r.close()                                   # and the client goes
        for _ in range(100):
            if anthropic_upstream.streams_closed:
                break
            await asyncio.sleep(0.05)
        assert anthropic_upstream.streams_closed == 1     # Lynkr closed its upstream stream too
        errors = [r for r in caplog.records if r.name == "aiohttp.server" and r.levelno >= logging.ERROR]
        assert errors == []
        anthropic_upstream.chunk_delay = 0.0
        again = await s.post(url + path, json={**BODIES[path], "stream": False},
                             headers={"anthropic-version": "2023-06-01"})
        assert again.status == 200
