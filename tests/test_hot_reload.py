"""Hot reload: a valid edit swaps the pipeline, an invalid one is reported and the running pipeline
kept, and in-flight requests finish on the pipeline they started on."""
import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import engine_state

H = Path(__file__).parent / "helpers" / "engine_stages.py"
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def answer_pipeline(text: str) -> str:
    return f'version: 1\nname: p-{text}\nstages:\n  - {{id: ans, uses: "{H}:Answer", with: {{text: "{text}"}}}}\n'


async def ask(url: str) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=BODY) as r:
            data = await r.json()
            assert r.status == 200, data
            return data["content"][0]["text"]


async def wait_for(cond, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_file_change_swaps_valid_pipeline(write_pipeline, lynkr):
    path = write_pipeline(answer_pipeline("one"))
    engine, url = await lynkr(path, watch=True)
    assert await ask(url) == "one"
    await asyncio.sleep(0.3)        # let the watcher start
    path.write_text(answer_pipeline("two"))
    await wait_for(lambda: engine.reloads >= 1)
    assert await ask(url) == "two"
    assert engine.current.name == "p-two"


async def test_invalid_file_is_reported_and_old_keeps_serving(write_pipeline, lynkr, monkeypatch):
    monkeypatch.setenv("LYNKR_ADMIN_TOKEN", "s3cret")
    path = write_pipeline(answer_pipeline("one"))
    engine, url = await lynkr(path, watch=True)
    await asyncio.sleep(0.3)
    path.write_text(answer_pipeline("two").replace("uses:", "usez:"))
    await wait_for(lambda: engine.reload_failures >= 1)
    assert await ask(url) == "one"
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/v1/admin/pipeline", headers={"authorization": "Bearer s3cret"}) as r:
            info = await r.json()
        async with s.get(url + "/v1/admin/pipeline") as r:
            assert r.status == 401
    assert info["name"] == "p-one" and info["hash"] == engine.current.hash
    assert "stages[0]" in info["last_error"] and str(path) in info["last_error"]
    assert info["loaded_at"]


async def test_in_flight_request_finishes_on_old_pipeline(write_pipeline, lynkr, monkeypatch):
    monkeypatch.setenv("LYNKR_ADMIN_TOKEN", "t")
    engine_state.reset()
    path = write_pipeline(f'version: 1\nstages:\n  - {{id: g, uses: "{H}:Gate", with: {{label: old}}}}\n')
    engine, url = await lynkr(path)
    slow = asyncio.create_task(ask(url))
    await asyncio.wait_for(engine_state.entered.wait(), 5)
    old = engine.current
    path.write_text(answer_pipeline("new"))
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/admin/reload", headers={"authorization": "Bearer t"}) as r:
            assert r.status == 200 and (await r.json())["reloaded"] is True
    assert await ask(url) == "new"
    assert not old.closed and engine_state.closed == []     # still serving its in-flight request
    engine_state.gate.set()
    assert await slow == "old"
    await wait_for(lambda: old.closed)
    assert engine_state.closed == ["old"]


async def test_forced_reload_of_invalid_file_returns_422(write_pipeline, lynkr, monkeypatch):
    monkeypatch.setenv("LYNKR_ADMIN_TOKEN", "t")
    path = write_pipeline(answer_pipeline("one"))
    engine, url = await lynkr(path)
    path.write_text("version: 1\nstages: [")
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/admin/reload", headers={"authorization": "Bearer t"}) as r:
            assert r.status == 422
            assert "YAML syntax error" in (await r.json())["last_error"]
    assert await ask(url) == "one"
