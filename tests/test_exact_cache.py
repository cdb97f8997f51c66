"""exact_cache end to end: the same request replays in each protocol, streamed and not; anything
that changes the answer (history, parameters, system, tools, model) misses; volatile parts do
not; only complete answers are stored; restart and TTL; telemetry and `lynkr report cache`."""
import time

import aiohttp
import pytest

from lynkr.cache.scope import exact_key
from tests.conftest import serving, start_app
from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message, tool_message
from tests.helpers.cache_clients import ask, pipeline, settle

EXACT = "  - {id: exact, uses: exact_cache%s}"


@pytest.fixture
async def upstream():
    n = {"i": 0}

    def script(body):
        n["i"] += 1
        return text_message(f"Reply {n['i']} to you.")
    up = AnthropicUpstream(script)
    async with serving(up):
        yield up


@pytest.mark.parametrize("protocol", ["anthropic", "openai_chat", "openai_responses"])
@pytest.mark.parametrize("stream", [False, True])
async def test_repeat_replays_in_each_protocol(protocol, stream, upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, EXACT % "")))
    async with aiohttp.ClientSession() as s:
        _, h, first, _ = await ask(s, url, protocol, "Say hello.", stream=stream)
        assert "x-lynkr-cache" not in h
        await settle(engine)
        st, h, second, _ = await ask(s, url, protocol, "Say hello.", stream=stream)
        # a non-streamed answer stored from a streamed request replays too (and back)
        _, h2, third, _ = await ask(s, url, protocol, "Say hello.", stream=not stream)
    assert st == 200 and h["x-lynkr-cache"] == "exact" and second == first == "Reply 1 to you."
    # the stream flag is not part of the key
    assert h2["x-lynkr-cache"] == "exact" and third == first
    assert len(upstream.requests) == 1


def test_key_covers_what_changes_the_answer():
    base = {"model": "m", "max_tokens": 100, "system": [{"type": "text", "text": "Be terse."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    k = exact_key(base)
    changed = [
        {**base, "model": "m2"},
        {**base, "max_tokens": 50},
        {**base, "temperature": 0.2},
        {**base, "top_p": 0.5},
        {**base, "stop_sequences": ["x"]},
        {**base, "thinking": {"type": "enabled", "budget_tokens": 1000}},
        {**base, "tool_choice": {"type": "any"}},
        {**base, "system": [{"type": "text", "text": "Be verbose."}]},
        {**base, "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]},
        {**base, "messages": base["messages"] + [{"role": "assistant", "content": [{"type": "text", "text": "yo"}]},
                                                 {"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
    ]
    assert len({exact_key(c) for c in changed} | {k}) == len(changed) + 1
    same = [
        {**base, "stream": True},
        {**base, "metadata": {"user_id": "someone"}},
        {**base, "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}]},
    ]
    assert {exact_key(c) for c in same} == {k}
    billing = lambda v: {**base, "system": [{"type": "text", "text": f"x-anthropic-billing-header: cc_version={v};"}]}
    assert exact_key(billing("2.1.328.817")) == exact_key(billing("2.1.328.999"))
    tool_ids = lambda i: {**base, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "ls"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_{i}", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": "a.py"}]}]}
    assert exact_key(tool_ids("01ABCDEF")) == exact_key(tool_ids("99ZYXWVU"))
    # what the user wrote is kept exactly, dates and ids included; reminders are normalised
    ask = lambda text: {**base, "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    assert exact_key(ask("What changed on 2026-11-26?")) != exact_key(ask("What changed on 2026-11-27?"))
    assert exact_key(ask("Explain commit 0123456789abcdef0123")) != exact_key(ask("Explain commit fedcba98765432100123"))
    remind = lambda d: {**base, "messages": [{"role": "user", "content": [
        {"type": "text", "text": f"<system-reminder>Today's date is {d}.</system-reminder>"},
        {"type": "text", "text": "hi"}]}]}
    assert exact_key(remind("2026-11-26")) == exact_key(remind("2026-11-27"))


async def test_tool_use_answers_stored_only_when_asked(write_pipeline, lynkr, tmp_path):
    up = AnthropicUpstream(lambda body: tool_message("Bash", {"command": "ls"}))
    runner, up_url = await start_app(up.app())
    try:
        body = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "list files"}]}
        for opts, hits in (("", False), (", with: {tool_use: true}", True)):
            engine, url = await lynkr(write_pipeline(pipeline(up_url, tmp_path / str(hits), EXACT % opts), f"{hits}.yaml"))
            async with aiohttp.ClientSession() as s:
                for i in range(2):
                    async with s.post(url + "/v1/messages", json=body) as r:
                        data = await r.json()
                        assert data["stop_reason"] == "tool_use"
                        assert (r.headers.get("x-lynkr-cache") == "exact") == (hits and i == 1)
                    await settle(engine)
    finally:
        await runner.cleanup()


async def test_restart_ttl_and_bypass(upstream, write_pipeline, lynkr, tmp_path):
    path = write_pipeline(pipeline(upstream.url, tmp_path, EXACT % ", with: {ttl: 3600}"))
    engine, url = await lynkr(path)
    async with aiohttp.ClientSession() as s:
        await ask(s, url, "anthropic", "Say hello.")
        await settle(engine)
        _, h, _, _ = await ask(s, url, "anthropic", "Say hello.", headers={"x-lynkr-cache": "bypass"})
        assert "x-lynkr-cache" not in h
        _, h, text, _ = await ask(s, url, "anthropic", "Say hello.", headers={"x-lynkr-tenant": "acme"})
        assert "x-lynkr-cache" not in h and text == "Reply 3 to you."     # tenants do not share answers
        await settle(engine)
    await engine.current.aclose()
    engine2, url2 = await lynkr(path)
    async with aiohttp.ClientSession() as s:
        _, h, text, _ = await ask(s, url2, "anthropic", "Say hello.")
    assert h["x-lynkr-cache"] == "exact" and text == "Reply 1 to you."
    # expired entries are neither served nor loaded
    stage = engine2.current.stages["exact"]
    assert stage.store.load("exact", "exact", now=time.time() + 7200) == []


async def test_telemetry_and_cache_report(upstream, write_pipeline, lynkr, tmp_path, capsys):
    stages = EXACT % "" + "\n  - {id: cache, uses: semantic_cache}"
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, stages)))
    async with aiohttp.ClientSession() as s:
        for q in ("What is the difference between TCP and UDP?", "What is the difference between TCP and UDP?",
                  "How does TCP differ from UDP?", "Sort the list in ascending order.", "Sort the list in descending order."):
            await ask(s, url, "anthropic", q)
            await settle(engine)
    engine.writer.flush()
    from lynkr.telemetry.reports import run_query
    db = str(tmp_path / "telemetry.duckdb")
    _, rows = run_query(db, "SELECT cache, count(*) FROM requests GROUP BY 1 ORDER BY 1")
    assert dict(rows) == {"exact": 1, "semantic": 1, "miss": 3}
    _, rows = run_query(db, "SELECT stage_id, tokens_before, tokens_after FROM stage_events "
                            "WHERE phase = 'run' AND tokens_before IS NOT NULL")
    assert {r[0] for r in rows} == {"exact", "cache"} and all(r[1] > 10 and r[2] == 0 for r in rows)
    from lynkr.cli import main
    assert main(["report", "cache-stages", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "exact_cache" in out and "semantic_cache" in out and "hit_rate" in out and "saved_tokens" in out
