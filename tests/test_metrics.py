"""GET /metrics: Prometheus text that prometheus_client's own parser accepts, with the counts of
the requests just served, token estimates from the telemetry writer, reloads and failures."""
import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from lynkr.server.metrics import Histogram, Metrics

PIPE = """
version: 1
name: metered
providers:
  up: {kind: anthropic, base_url: "%s"}
models: {claude-x: {}}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
telemetry: {path: "%s", flush_interval_s: 0.05}
"""


def parse(text: str) -> dict:
    """sample name -> [(labels, value)]"""
    out: dict = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(samples, name, **match) -> float:
    return sum(v for labels, v in samples.get(name, []) if all(labels.get(k) == w for k, w in match.items()))


async def test_metrics_count_requests_errors_latency_tokens_and_reloads(anthropic_upstream, write_pipeline, lynkr, tmp_path):
    path = write_pipeline(PIPE % (anthropic_upstream.url, tmp_path / "m.duckdb"))
    engine, url = await lynkr(path, telemetry_path=str(tmp_path / "m.duckdb"))
    body = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hello there"}]}
    anthropic_upstream.fail_next.append((400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}))
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=body) as r:
            assert r.status == 400
        async with s.post(url + "/v1/messages", json=body) as r:
            assert r.status == 200
        async with s.post(url + "/v1/messages", json={**body, "stream": True}) as r:
            assert "message_stop" in await r.text()
        # Telemetry rows (and so the token counters) are written off the request path.
        for _ in range(100):
            if engine.writer.written >= 3:
                break
            await asyncio.get_running_loop().run_in_executor(None, engine.writer.flush)
        assert await engine.reload()
        path.write_text("version: 1\nstages: [{id: x, uses: nope}]\n")
        assert not await engine.reload()
        async with s.get(url + "/metrics") as r:
            assert r.status == 200
            assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
            m = parse(await r.text())

    assert total(m, "lynkr_requests_total") == 3
    assert total(m, "lynkr_http_responses_total", route="/v1/messages") == 3
    assert total(m, "lynkr_http_responses_total", route="/v1/messages", status="400") == 1
    assert total(m, "lynkr_requests_total", status="200", provider="up", model="claude-x", pipeline="metered") == 2
    assert total(m, "lynkr_requests_total", status="400") == 1
    assert total(m, "lynkr_errors_total", status="400") == 1
    assert total(m, "lynkr_request_duration_seconds_count") == 3
    assert [v for labels, v in m["lynkr_request_duration_seconds_bucket"] if labels["le"] == "+Inf"] == [3]
    # Upstream time and overhead exist for the two answered requests (the 400 had no first byte).
    assert total(m, "lynkr_upstream_duration_seconds_count") == 2
    assert total(m, "lynkr_overhead_duration_seconds_count") == 2
    assert total(m, "lynkr_usage_tokens_total", kind="input") == 20       # the upstream reports 10 per answer
    assert total(m, "lynkr_usage_tokens_total", kind="output") > 0
    assert total(m, "lynkr_tokens_total", kind="client") > 0
    assert total(m, "lynkr_tokens_total", kind="saved") == 0               # no stage changed anything
    assert total(m, "lynkr_stage_runs_total", stage="call") == 3
    assert total(m, "lynkr_pipeline_reloads_total") == 1
    assert total(m, "lynkr_pipeline_reload_failures_total") == 1
    assert total(m, "lynkr_pipeline_info", pipeline="metered") == 1
    assert total(m, "lynkr_telemetry_rows_written_total") >= 3


def test_metrics_stage_tokens_breakers_and_escaping():
    class Breakers:
        def snapshot(self):
            return {"up:claude-x": {"state": "open", "opens": 2}, "ollama:qwen2.5-coder:7b": {"state": "closed", "opens": 0}}

    class Pipeline:
        name, hash, loaded_at = "p", "h", None
        config = {"models": {"claude-x": {}, "qwen2.5-coder:7b": {}}}

    class Engine:
        current = Pipeline()
        reloads = reload_failures = 0
        writer = None
        shared = {"provider_breakers": Breakers()}
        listeners: list = []

    m = Metrics(Engine())
    m.on_rows({"pipeline": 'p"1', "tokens_client": 1000, "tokens_upstream": 700, "status": 200},
              [{"phase": "run", "stage_id": "trim", "uses": "trim", "tokens_before": 1000, "tokens_after": 800},
               {"phase": "run", "stage_id": "toon", "uses": "toon", "tokens_before": 800, "tokens_after": 700},
               {"phase": "run", "stage_id": "call", "uses": "provider_call", "tokens_before": None, "tokens_after": None}])
    m.on_rows({"pipeline": 'p"1', "tokens_client": 50, "tokens_upstream": 50, "status": 500}, [])
    s = parse(m.render())
    assert total(s, "lynkr_tokens_total", kind="saved") == 300
    assert total(s, "lynkr_tokens_total", kind="client", pipeline='p"1') == 1050
    assert total(s, "lynkr_stage_tokens_total", stage="trim", kind="saved") == 200
    assert total(s, "lynkr_stage_tokens_total", stage="toon", kind="saved") == 100
    assert "call" not in {labels["stage"] for labels, _v in s["lynkr_stage_tokens_total"]}
    assert total(s, "lynkr_breaker_state", provider="up", model="claude-x") == 2
    assert total(s, "lynkr_breaker_state", provider="ollama", model="qwen2.5-coder:7b") == 0
    assert total(s, "lynkr_breaker_opens_total", provider="up") == 2


def test_histogram_buckets_are_cumulative():
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 2.0):
        h.observe(v)
    s = parse("# TYPE x histogram\n" + "\n".join(h.samples("x", {})) + "\n")
    assert [v for _l, v in s["x_bucket"]] == [2, 3, 4]
    assert total(s, "x_count") == 4 and abs(total(s, "x_sum") - 2.65) < 1e-9


async def test_refusals_before_the_pipeline_are_counted(anthropic_upstream, write_pipeline, lynkr, tmp_path):
    path = write_pipeline((PIPE % (anthropic_upstream.url, tmp_path / "r.duckdb")) + "server: {api_keys: [k1]}\n")
    _engine, url = await lynkr(path)
    body = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=body) as r:
            assert r.status == 401
        async with s.post(url + "/v1/messages", json=body, headers={"x-api-key": "k1"}) as r:
            assert r.status == 200
        async with s.get(url + "/nowhere") as r:
            assert r.status in (401, 404)      # the client-key guard may answer first
        async with s.get(url + "/metrics") as r:
            m = parse(await r.text())
    assert total(m, "lynkr_http_responses_total", route="/v1/messages", status="401") == 1
    assert total(m, "lynkr_http_responses_total", route="/v1/messages", status="200") == 1
    assert total(m, "lynkr_http_responses_total", route="(unmatched)") == 1
    assert total(m, "lynkr_requests_total") == 1        # only the one that reached the pipeline
