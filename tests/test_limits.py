"""Limits and load shedding: body size, message count, concurrent requests per key, measured pressure."""
import asyncio
import time

import aiohttp
import orjson
import pytest

from tests.helpers.reliability_util import (BODY, OPENAI_BODY, GatedUpstream, lynkr_app, post, start_upstream)

PIPE = """
version: 1
server:
%s
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""


@pytest.fixture
async def gated():
    up = GatedUpstream()
    runner = await start_upstream(up)
    yield up
    up.release()
    await runner.cleanup()


def _server(**kw) -> str:
    import json
    return "\n".join(f"  {k}: {json.dumps(v)}" for k, v in kw.items())


async def test_body_too_large_is_413_in_client_shape(anthropic_upstream, write_pipeline, tmp_path):
    pipe = write_pipeline(PIPE % (_server(max_body_bytes=2048), anthropic_upstream.url))
    big = {**BODY, "messages": [{"role": "user", "content": "x" * 5000}]}
    async with lynkr_app(pipe, tmp_path) as (app, url):
        status, h, body = await post(url, body=big)
        assert status == 413
        err = orjson.loads(body)
        assert err["type"] == "error" and err["error"]["type"] == "request_too_large"
        assert h["x-should-retry"] == "false"       # the same body will never fit
        # An OpenAI client gets the same limit in its own envelope.
        status, _, body = await post(url, "/v1/chat/completions",
                                     {**OPENAI_BODY, "messages": [{"role": "user", "content": "x" * 5000}]})
        assert status == 413 and orjson.loads(body)["error"]["message"]
        status, _, body = await post(url, "/v1/responses", {"model": "gpt-x", "input": "x" * 5000})
        assert status == 413 and orjson.loads(body)["error"]["message"]

        # Chunked upload (no content-length) is cut off at the limit too.
        async def chunks():
            raw = orjson.dumps(big)
            for i in range(0, len(raw), 1000):
                yield raw[i:i + 1000]
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/messages", data=chunks(), headers={"content-type": "application/json"}) as r:
                assert r.status == 413

        # A gzip bomb: small on the wire, over the limit once inflated.
        import gzip
        bomb = gzip.compress(orjson.dumps({**BODY, "pad": "0" * 200_000}))
        assert len(bomb) < 2048
        status, _, body = await post(url, data=bomb, headers={"content-encoding": "gzip", "content-type": "application/json"})
        assert status == 413

        assert anthropic_upstream.requests == []
        status, _, _ = await post(url)
        assert status == 200
        # A compressed body within the limit is read whole (aiohttp inflates it on the way in).
        status, _, body = await post(url, data=gzip.compress(orjson.dumps({**BODY, "pad": "y" * 1500})),
                                     headers={"content-encoding": "gzip", "content-type": "application/json"})
        assert status == 200, body
        status, _, body = await post(url, data=b"\x1f\x8b not gzip at all",
                                     headers={"content-encoding": "gzip", "content-type": "application/json"})
        assert status == 400 and b"Traceback" not in body


async def test_too_many_messages_is_413(anthropic_upstream, write_pipeline, tmp_path):
    pipe = write_pipeline(PIPE % (_server(max_messages=3), anthropic_upstream.url))
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(5)]
    async with lynkr_app(pipe, tmp_path) as (app, url):
        status, _, body = await post(url, body={**BODY, "messages": msgs})
        assert status == 413 and orjson.loads(body)["error"]["type"] == "request_too_large"
        status, _, _ = await post(url, body={**BODY, "messages": msgs[:3]})
        assert status == 200


async def test_concurrency_per_client_key(gated, write_pipeline, tmp_path):
    keys = ["lk-key-aaaaaaaaaaaa", "lk-key-bbbbbbbbbbbb"]
    pipe = write_pipeline(PIPE % (_server(api_keys=keys, max_concurrent_per_key=2), gated.url))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        a = {"x-api-key": keys[0]}
        held = [asyncio.create_task(post(url, headers=a)) for _ in range(2)]
        await gated.wait_arrived(2)
        status, h, body = await post(url, headers=a)
        assert status == 429
        assert orjson.loads(body)["error"]["type"] == "rate_limit_error"
        assert int(h["retry-after"]) >= 1 and h["x-should-retry"] == "true"
        # Another key has its own allowance.
        other = asyncio.create_task(post(url, headers={"authorization": f"Bearer {keys[1]}"}))
        await gated.wait_arrived(3)
        gated.release()
        results = await asyncio.gather(*held, other)
        assert [r[0] for r in results] == [200, 200, 200]
        # Slots are given back when requests finish.
        assert app["per_key_in_flight"] == {}
        status, _, _ = await post(url, headers=a)
        assert status == 200


async def test_shed_by_in_flight_529_anthropic_503_openai_and_ready(gated, write_pipeline, tmp_path):
    pipe = write_pipeline(PIPE % (_server(shed={"max_in_flight": 2, "retry_after_s": 3}), gated.url))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        held = [asyncio.create_task(post(url)), asyncio.create_task(post(url, body={**BODY, "stream": True}))]
        await gated.wait_arrived(2)
        status, h, body = await post(url)
        assert status == 529
        err = orjson.loads(body)
        assert err["error"]["type"] == "overloaded_error" and h["retry-after"] == "3"
        status, h, body = await post(url, "/v1/chat/completions", OPENAI_BODY)
        assert status == 503 and h["retry-after"] == "3"
        assert isinstance(orjson.loads(body)["error"], dict)
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/health/ready") as r:
                assert r.status == 503 and (await r.json())["status"] == "overloaded"
            # Liveness is not readiness: the process is fine, just full.
            async with s.get(url + "/health/live") as r:
                assert r.status == 200
        assert app["shedder"].shed == 2
        gated.release()
        results = await asyncio.gather(*held)
        assert [r[0] for r in results] == [200, 200]
        assert b"message_stop" in results[1][2]
        assert app["shedder"].in_flight == 0
        status, _, _ = await post(url)
        assert status == 200
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/health/ready") as r:
                assert r.status == 200


async def test_shed_by_event_loop_lag(anthropic_upstream, write_pipeline, tmp_path):
    pipe = write_pipeline(PIPE % (_server(shed={"max_loop_lag_ms": 100}), anthropic_upstream.url))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        shedder = app["shedder"]
        status, _, _ = await post(url)
        assert status == 200
        time.sleep(1.5)              # the event loop is stuck: what a CPU-bound stage would do
        while shedder.lag_ms < 100:  # the monitor samples once the loop runs again
            await asyncio.sleep(0.01)
        assert shedder.overloaded() and "lag" in shedder.reason()
        status, h, body = await post(url)
        assert status == 529 and "lag" in orjson.loads(body)["error"]["message"]
        assert "retry-after" in h
        # The lag is a decaying peak: the process recovers on its own once the loop is healthy.
        async with asyncio.timeout(10):
            while shedder.overloaded():
                await asyncio.sleep(0.05)
        status, _, _ = await post(url)
        assert status == 200


async def test_default_shedding_does_not_refuse_a_burst(tmp_path):
    # The product we replace shed everything under its own benchmark; ours must take a burst with
    # its defaults. A real process, so the lag it measures is its own and not this test's client.
    from tests.helpers.reliability_faults import FaultyUpstream
    from tests.helpers.reliability_util import LynkrProcess

    up = FaultyUpstream()
    runner = await start_upstream(up)
    pipe = tmp_path / "pipeline.yaml"
    pipe.write_text(PIPE % (_server(port=8081), up.url) + f"telemetry: {{path: '{tmp_path / 't.duckdb'}'}}\n")
    lynkr = LynkrProcess(pipe)
    try:
        await lynkr.ready()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as s:
            async def one(i):
                async with s.post(lynkr.url + "/v1/messages", json={**BODY, "model": "ok", "stream": i % 2 == 0}) as r:
                    await r.read()
                    return r.status
            statuses = await asyncio.gather(*(one(i) for i in range(300)))
        assert statuses.count(200) == 300, {st: statuses.count(st) for st in set(statuses)}
    finally:
        lynkr.kill()
        await runner.cleanup()
