"""The executor's rules: skipped `if:` steps, the first response wins, on_error handlers, fail-open
optimisation stages, critical failures in the client's protocol, `after` hooks once the response is out."""
import asyncio
from pathlib import Path

import pytest

from lynkr.config import load_config
from lynkr.engine import build_pipeline
from lynkr.exchange import Exchange
from tests.helpers import engine_state

H = Path(__file__).parent / "helpers" / "engine_stages.py"


def pipeline_from(write_pipeline, stages_yaml: str):
    text = "version: 1\nstages:\n" + stages_yaml.replace("H:", f"{H}:")
    return build_pipeline(load_config(write_pipeline(text), {}))


def exchange(text="hi"):
    return Exchange.new("anthropic", {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]})


async def run(p, x=None):
    x = x or exchange()
    await p.handle(x)
    await p.finish(x)
    return x


async def test_if_false_skips_and_records(write_pipeline):
    p = pipeline_from(write_pipeline, """
  - {id: t, uses: "H:Tag", with: {key: tier, value: SIMPLE}}
  - {id: only_hard, uses: "H:Tag", with: {key: hard, value: true}, needs: [t], if: "tier != 'SIMPLE'"}
  - {id: ans, uses: "H:Answer", needs: [only_hard]}
""")
    x = await run(p)
    assert "hard" not in x.vars
    ev = x.event("only_hard")
    assert ev.outcome == "skipped" and ev.detail["if"] == "tier != 'SIMPLE'"
    assert x.response.message["content"][0]["text"] == "answered"


async def test_response_stops_request_stages(write_pipeline):
    p = pipeline_from(write_pipeline, """
  - {id: ans, uses: "H:Answer"}
  - {id: later, uses: "H:Tag", with: {key: later, value: 1}, needs: [ans]}
""")
    x = await run(p)
    assert "later" not in x.vars
    assert x.event("ans").outcome == "responded"
    assert x.event("later") is None


async def test_optimisation_stage_fails_open(write_pipeline):
    p = pipeline_from(write_pipeline, """
  - {id: boom, uses: "H:Boom"}
  - {id: ans, uses: "H:Answer", needs: [boom]}
""")
    x = await run(p)
    assert x.event("boom").outcome == "failed_open"
    assert "RuntimeError: boom" in x.event("boom").detail["error"]
    assert x.response.ok


async def test_critical_stage_error_becomes_client_error(write_pipeline):
    p = pipeline_from(write_pipeline, """
  - {id: call, uses: "H:CriticalBoom", with: {status: 503}}
  - {id: ans, uses: "H:Answer", needs: [call]}
""")
    x = await run(p)
    assert x.response.error is not None and x.response.status == 503
    assert x.event("ans") is None


async def test_on_error_is_followed(write_pipeline):
    p = pipeline_from(write_pipeline, """
  - {id: call, uses: "H:CriticalBoom", with: {status: 502}, on_error: backup}
  - {id: backup, uses: "H:Answer", with: {text: from backup}}
""")
    assert [s.id for s in p.plan.main] == ["call"] and "backup" in p.plan.handlers
    x = await run(p)
    assert x.response.message["content"][0]["text"] == "from backup"
    assert x.vars["failed_stage"] == "call" and "502" in x.vars["error"]


async def test_needs_order_beats_file_order(write_pipeline):
    p = pipeline_from(write_pipeline, """
  - {id: second, uses: "H:Tag", with: {key: b}, needs: [first]}
  - {id: first, uses: "H:Tag", with: {key: a}}
  - {id: ans, uses: "H:Answer", needs: [second]}
""")
    x = await run(p)
    assert x.vars["order"] == ["first", "second"]


async def test_no_response_is_an_error(write_pipeline):
    p = pipeline_from(write_pipeline, """
  - {id: t, uses: "H:Tag", with: {key: a}}
""")
    x = await run(p)
    assert x.response.status == 500 and "without a response" in x.response.error.message


async def test_after_hooks_run_after_stream_without_delaying_it(write_pipeline, lynkr, tmp_path):
    import aiohttp

    engine_state.reset()
    path = write_pipeline("version: 1\nstages:\n"
                          f"  - {{id: a, uses: \"{H}:After\"}}\n"
                          f"  - {{id: s, uses: \"{H}:SlowStream\", needs: [a]}}\n")
    engine, url = await lynkr(path)
    body = {"model": "m", "stream": True, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=body) as r:
            first = await r.content.readline()
            assert first.startswith(b"event: message_start")
            await asyncio.wait_for(engine_state.entered.wait(), 5)
            assert engine_state.after_calls == []          # the stream is still open: no after hook yet
            engine_state.gate.set()
            rest = await r.read()
            assert b"event: message_stop" in rest
    for _ in range(100):
        if engine_state.after_calls:
            break
        await asyncio.sleep(0.01)
    assert len(engine_state.after_calls) == 1 and engine_state.after_calls[0][1] is True


async def test_stage_events_recorded(write_pipeline):
    p = pipeline_from(write_pipeline, """
  - {id: t, uses: "H:Tag", with: {key: a}}
  - {id: ans, uses: "H:Answer", needs: [t]}
""")
    x = await run(p)
    assert [(e.stage_id, e.outcome) for e in x.events] == [("t", "ok"), ("ans", "responded")]
    assert all(e.duration_us >= 0 for e in x.events)
