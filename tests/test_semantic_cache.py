"""semantic_cache end to end: replays in every client protocol, streaming and not; what must
never hit (tool loops, other scopes, near misses); persistence across a restart; TTL; bypass;
load-time and run-time failures."""
import asyncio

import aiohttp
import pytest

from lynkr.errors import ConfigError
from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message, tool_message
from tests.helpers.cache_clients import ask, pipeline, settle
from tests.conftest import serving, start_app

SEM = "  - {id: cache, uses: semantic_cache, with: {threshold: 0.87%s}}"
Q1 = "What is the difference between TCP and UDP?"
Q1_PARAPHRASE = "How does TCP differ from UDP?"


def answers():
    n = {"i": 0}

    def script(body):
        n["i"] += 1
        return text_message(f"Answer number {n['i']}: TCP is connection-oriented, UDP is not.")
    return script


@pytest.fixture
async def upstream():
    up = AnthropicUpstream(answers())
    async with serving(up):
        yield up


@pytest.mark.parametrize("protocol", ["anthropic", "openai_chat", "openai_responses"])
@pytest.mark.parametrize("stream", [False, True])
async def test_hit_replays_in_each_protocol(protocol, stream, upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, SEM % "")))
    async with aiohttp.ClientSession() as s:
        st, h, first, _ = await ask(s, url, protocol, Q1, stream=stream)
        assert st == 200 and h.get("x-lynkr-cache") is None
        await settle(engine)
        st, h, second, _ = await ask(s, url, protocol, Q1_PARAPHRASE, stream=stream)
    assert st == 200
    assert h["x-lynkr-cache"] == "semantic"
    assert 0.87 <= float(h["x-lynkr-cache-similarity"]) <= 1.0
    assert second == first and first.startswith("Answer number 1")
    assert len(upstream.requests) == 1


async def test_stored_from_a_stream_replayed_as_json_across_protocols(upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, SEM % "")))
    async with aiohttp.ClientSession() as s:
        _, _, first, _ = await ask(s, url, "anthropic", Q1, stream=True)
        await settle(engine)
        st, h, again, _ = await ask(s, url, "openai_chat", Q1)
    assert h["x-lynkr-cache"] == "semantic" and again == first


async def test_tool_results_never_hit_and_tool_answers_are_not_stored(write_pipeline, lynkr, tmp_path):
    up = AnthropicUpstream(lambda body: tool_message("Bash", {"command": "ls"}) if len(body["messages"]) == 1
                           else text_message("Done listing."))
    runner, up_url = await start_app(up.app())
    try:
        engine, url = await lynkr(write_pipeline(pipeline(up_url, tmp_path, SEM % ", max_turns: 5")))
        loop = [{"role": "user", "content": "List the files here."},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"}]}]
        async with aiohttp.ClientSession() as s:
            for _ in range(2):
                for messages in (loop[:1], loop):
                    async with s.post(url + "/v1/messages", json={"model": "m", "max_tokens": 50, "messages": messages}) as r:
                        assert r.status == 200 and "x-lynkr-cache" not in r.headers
                    await settle(engine)
        assert len(up.requests) == 4            # nothing was answered from the cache
        stage = engine.current.stages["cache"]
        assert len(stage.index) == 0            # the tool_use answer was not stored; the loop was skipped
    finally:
        await runner.cleanup()


async def test_scopes_never_share_entries(upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, SEM % "")))
    async with aiohttp.ClientSession() as s:
        await ask(s, url, "anthropic", Q1, extra={"system": "You work in /home/dev/project-a"})
        await settle(engine)
        # another repository (system prompt), another model, another tenant: all misses
        for kw in ({"extra": {"system": "You work in /home/dev/project-b"}},
                   {"model": "claude-other"},
                   {"headers": {"x-lynkr-tenant": "acme"}}):
            _, h, _, _ = await ask(s, url, "anthropic", Q1, **kw)
            assert "x-lynkr-cache" not in h, kw
            await settle(engine)
        # volatile parts of the system prompt (dates, request ids) do not split the scope
        _, h, _, _ = await ask(s, url, "anthropic", Q1_PARAPHRASE,
                               extra={"system": "You work in /home/dev/project-a"})
        assert h["x-lynkr-cache"] == "semantic"
    assert len(upstream.requests) == 4


async def test_volatile_system_parts_keep_the_scope(upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, SEM % "")))
    sys1 = "x-anthropic-billing-header: cc_version=1.2.3.abc;\nToday's date is 2026-11-26.\nSession 3f0c9a4e-1111-2222-3333-444455556666"
    sys2 = "x-anthropic-billing-header: cc_version=1.2.3.def;\nToday's date is 2026-11-27.\nSession 9a9a9a9a-1111-2222-3333-444455556666"
    async with aiohttp.ClientSession() as s:
        await ask(s, url, "anthropic", Q1, extra={"system": sys1})
        await settle(engine)
        _, h, _, _ = await ask(s, url, "anthropic", Q1_PARAPHRASE, extra={"system": sys2})
    assert h["x-lynkr-cache"] == "semantic"


async def test_guard_rejects_a_near_miss_and_records_it(upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, SEM % "")))
    async with aiohttp.ClientSession() as s:
        await ask(s, url, "anthropic", "How do I undo my last git commit but keep the changes?")
        await settle(engine)
        _, h, text, _ = await ask(s, url, "anthropic", "How do I undo my last git commit and discard the changes?")
        assert "x-lynkr-cache" not in h and text.startswith("Answer number 2")
        await settle(engine)
    engine.writer.flush()
    from lynkr.telemetry.reports import run_query
    cols, rows = run_query(str(tmp_path / "telemetry.duckdb"),
                           "SELECT detail FROM stage_events WHERE stage_id = 'cache' AND phase = 'run' ORDER BY ts")
    # The refusal names its rule and the tokens on each side.
    assert '"reject"' in rows[-1][0] and '"word: discard ≠ keep"' in rows[-1][0]


async def test_restart_keeps_entries_and_ttl_expires_them(upstream, write_pipeline, lynkr, tmp_path):
    path = write_pipeline(pipeline(upstream.url, tmp_path, SEM % ", ttl: 3600"))
    engine, url = await lynkr(path)
    async with aiohttp.ClientSession() as s:
        await ask(s, url, "anthropic", Q1)
        await settle(engine)
    await engine.current.aclose()           # flushes the store
    engine2, url2 = await lynkr(path)        # a new process would load the same file
    async with aiohttp.ClientSession() as s:
        _, h, text, _ = await ask(s, url2, "anthropic", Q1_PARAPHRASE)
    assert h["x-lynkr-cache"] == "semantic" and text.startswith("Answer number 1")
    # the same entries with a TTL that has passed: gone
    stage = engine2.current.stages["cache"]
    import time
    entry, vector = next(stage.index.entries())
    assert stage.index.search(entry.scope, vector, threshold=0.5, now=time.time() + 7200) == []
    assert len(stage.index.expire(time.time() + 7200)) == 1 and len(stage.index) == 0


async def test_ttl_expiry_over_http(upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, SEM % ", ttl: 0.2")))
    async with aiohttp.ClientSession() as s:
        await ask(s, url, "anthropic", Q1)
        await settle(engine)
        await asyncio.sleep(0.3)
        _, h, text, _ = await ask(s, url, "anthropic", Q1)
    assert "x-lynkr-cache" not in h and text.startswith("Answer number 2")


async def test_bypass_header_and_option(upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, SEM % "")))
    async with aiohttp.ClientSession() as s:
        await ask(s, url, "anthropic", Q1)
        await settle(engine)
        _, h, _, _ = await ask(s, url, "anthropic", Q1, headers={"x-lynkr-cache": "bypass"})
        assert "x-lynkr-cache" not in h
    engine2, url2 = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path / "b", SEM % ", bypass: true"), "b.yaml"))
    async with aiohttp.ClientSession() as s:
        for _ in range(2):
            _, h, _, _ = await ask(s, url2, "anthropic", Q1)
            await settle(engine2)
            assert "x-lynkr-cache" not in h
    assert len(upstream.requests) == 4


async def test_upstream_errors_and_truncated_answers_are_not_stored(write_pipeline, lynkr, tmp_path):
    msg = text_message("cut off")
    msg["stop_reason"] = "max_tokens"
    up = AnthropicUpstream(lambda body: msg)
    up.fail_next.append((529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}))
    runner, up_url = await start_app(up.app())
    try:
        engine, url = await lynkr(write_pipeline(pipeline(up_url, tmp_path, SEM % "")))
        body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": Q1}]}
        async with aiohttp.ClientSession() as s:
            for _ in range(2):      # the first meets a 529 (retried or not), then max_tokens answers
                async with s.post(url + "/v1/messages", json=body) as r:
                    await r.read()
                await settle(engine)
        assert len(engine.current.stages["cache"].index) == 0
    finally:
        await runner.cleanup()


async def test_embedding_failure_fails_open(upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, SEM % "")))
    stage = engine.current.stages["cache"]

    class Broken:
        dim = stage.embedder.dim

        def embed(self, texts, max_tokens=None):
            raise RuntimeError("onnx session died")
    async with aiohttp.ClientSession() as s:
        await ask(s, url, "anthropic", Q1)          # stored: the scope now has an answer to look up
        await settle(engine)
        stage.embedder = Broken()
        st, h, text, _ = await ask(s, url, "anthropic", "What is a TCP handshake?")
    assert st == 200 and text.startswith("Answer number 2")
    await settle(engine)
    engine.writer.flush()
    from lynkr.telemetry.reports import run_query
    _, rows = run_query(str(tmp_path / "telemetry.duckdb"),
                        "SELECT outcome, detail FROM stage_events WHERE stage_id = 'cache' AND phase = 'run' ORDER BY ts")
    assert rows[-1][0] == "failed_open" and "onnx session died" in rows[-1][1]


def test_bad_model_path_is_a_load_time_error(tmp_path):
    from lynkr.engine.pipeline import load_pipeline

    p = tmp_path / "p.yaml"
    p.write_text(pipeline("http://127.0.0.1:9", tmp_path, SEM % f", model_path: {tmp_path}/no-such-model"))
    with pytest.raises(ConfigError) as e:
        load_pipeline(p)
    msg = str(e.value)
    assert "no-such-model" in msg and "p.yaml" in msg and "model_path" in msg
    with pytest.raises(ConfigError) as e:          # `lynkr validate` checks it too, loading nothing
        load_pipeline(p, dry_run=True)
    assert "no-such-model" in str(e.value)
    (tmp_path / "empty").mkdir()
    p.write_text(pipeline("http://127.0.0.1:9", tmp_path, SEM % f", model_path: {tmp_path}/empty"))
    with pytest.raises(ConfigError) as e:
        load_pipeline(p)
    assert str(tmp_path / "empty") in str(e.value)


async def test_codex_environment_context_scopes_by_cwd_not_date(upstream, write_pipeline, lynkr, tmp_path):
    engine, url = await lynkr(write_pipeline(pipeline(upstream.url, tmp_path, SEM % "")))

    def env(cwd, date):
        return {"type": "message", "role": "user", "content": [{"type": "input_text", "text":
                f"<environment_context>\n  <cwd>{cwd}</cwd>\n  <current_date>{date}</current_date>\n</environment_context>"}]}

    def body(cwd, date, q):
        return {"model": "gpt-test", "input": [env(cwd, date), {"type": "message", "role": "user",
                                                                 "content": [{"type": "input_text", "text": q}]}]}
    async with aiohttp.ClientSession() as s:
        async def post(b):
            async with s.post(url + "/v1/responses", json=b) as r:
                assert r.status == 200
                await r.read()
                await settle(engine)
                return r.headers.get("x-lynkr-cache")
        assert await post(body("/home/dev/a", "2026-11-22", Q1)) is None
        assert await post(body("/home/dev/a", "2026-11-23", Q1_PARAPHRASE)) == "semantic"
        assert await post(body("/home/dev/b", "2026-11-23", Q1_PARAPHRASE)) is None


async def test_hot_reload_keeps_entries(upstream, write_pipeline, lynkr, tmp_path):
    path = write_pipeline(pipeline(upstream.url, tmp_path, SEM % ""))
    engine, url = await lynkr(path)
    async with aiohttp.ClientSession() as s:
        await ask(s, url, "anthropic", Q1)
        await settle(engine)
        old = engine.current
        path.write_text(pipeline(upstream.url, tmp_path, SEM % ", ttl: 7200"))
        assert await engine.reload()
        assert engine.current is not old and old.closed
        _, h, text, _ = await ask(s, url, "anthropic", Q1_PARAPHRASE)
    assert h["x-lynkr-cache"] == "semantic" and text.startswith("Answer number 1")


async def test_embeds_only_where_a_hit_is_possible(write_pipeline, lynkr, tmp_path):
    """While no stored question shares what a hit must share (the guard's signature), a question is
    neither embedded nor looked up (recorded as `no_candidate`); a stored answer waits unembedded
    (a tool call is not stored at all), and the first rephrasing embeds both and hits."""
    answers = iter([tool_message("Bash", {"command": "ls"}), text_message("Use git stash."), text_message("unused")])
    up = AnthropicUpstream(lambda body: next(answers))
    async with serving(up):
        engine, url = await lynkr(write_pipeline(pipeline(up.url, tmp_path, SEM % "")))
        async with aiohttp.ClientSession() as s:
            body = {"model": "claude-test", "max_tokens": 100,
                    "messages": [{"role": "user", "content": "What does git stash do?"}]}
            async with s.post(url + "/v1/messages", json=body) as r:
                assert (await r.json())["stop_reason"] == "tool_use"
            await settle(engine)
            await ask(s, url, "anthropic", "What does git stash do?")
            await settle(engine)
            _, h, text, _ = await ask(s, url, "anthropic", "Explain what git stash is used for.")
    assert h["x-lynkr-cache"] == "semantic" and text == "Use git stash."
    engine.writer.flush()
    from lynkr.telemetry.reports import run_query
    _, rows = run_query(str(tmp_path / "telemetry.duckdb"),
                        "SELECT detail FROM stage_events WHERE stage_id = 'cache' ORDER BY ts")
    details = [r[0] or "" for r in rows]
    assert '"reason":"no_candidate"' in details[0] and '"not_stored"' in "".join(details[:2])
    assert '"stored":true' in "".join(details[2:4])
