"""The dashboard's server side: off unless enabled, admin token required, JSON from the report
SQL, no prompt text, and in-process queries that never cost the telemetry writer a row."""
import asyncio

import aiohttp

from tests.conftest import start_app
from tests.helpers.reports_seed import _req, known_rows, seed, write_pipeline

AUTH = {"Authorization": "Bearer s3cret"}


async def _serve(pipeline_path, telemetry_path=None):
    from lynkr.engine.runtime import Engine
    from lynkr.server.app import create_app

    engine = Engine(str(pipeline_path), watch=False, telemetry_path=telemetry_path)
    await engine.start()
    runner, url = await start_app(create_app(engine, manage_engine=False))

    async def stop():
        await runner.cleanup()
        await engine.stop()
    return engine, url, stop


async def test_off_unless_enabled_and_token_required(tmp_path):
    db = seed(tmp_path / "t.duckdb")
    _e, url, stop = await _serve(write_pipeline(tmp_path, db, dashboard=False))
    try:
        async with aiohttp.ClientSession() as s:
            for path in ("/dashboard", "/dashboard/api/data", "/dashboard/static/dashboard.js"):
                async with s.get(url + path, headers=AUTH) as r:
                    assert r.status == 404, path
                    assert "dashboard is off" in await r.text()
    finally:
        await stop()

    _e, url, stop = await _serve(write_pipeline(tmp_path, db, dashboard=True))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/dashboard") as r:
                assert r.status == 401
            async with s.get(url + "/dashboard?token=nope") as r:
                assert r.status == 401
            async with s.get(url + "/dashboard?token=s3cret") as r:
                assert r.status == 200 and r.content_type == "text/html"
                assert r.headers["Referrer-Policy"] == "no-referrer"
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            async with s.get(url + "/dashboard/static/dashboard.js") as r:
                assert r.status == 200 and "application/javascript" in r.headers["content-type"]
            async with s.get(url + "/dashboard/static/../dashboard.py") as r:
                assert r.status == 404
    finally:
        await stop()


async def test_data_endpoint_matches_the_reports_and_holds_no_prompt_text(tmp_path):
    reqs, evs = known_rows()
    reqs[0]["prompt"] = '{"messages": "SECRET PROMPT TEXT"}'
    reqs[0]["response_text"] = "SECRET ANSWER TEXT"
    db = seed(tmp_path / "t.duckdb", reqs, evs)
    _e, url, stop = await _serve(write_pipeline(tmp_path, db))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/dashboard/api/data", headers=AUTH) as r:
                assert r.status == 200
                text = await r.text()
                data = await r.json()
            async with s.get(url + "/dashboard/api/data?since=7d", headers=AUTH) as r:
                recent = await r.json()
            async with s.get(url + "/dashboard/api/report/tiers", headers=AUTH) as r:
                tiers = await r.json()
            async with s.get(url + "/dashboard/api/report/nope", headers=AUTH) as r:
                assert r.status == 404 and "no report named" in (await r.json())["error"]
            async with s.get(url + "/dashboard/api/data?since=soon", headers=AUTH) as r:
                assert r.status == 400 and "--since" in (await r.json())["error"]
    finally:
        await stop()
    assert "SECRET" not in text
    assert data["requests"] == 6 and recent["requests"] == 5
    assert set(data["reports"]) == {"savings", "by-day", "by-model", "tiers", "cache", "latency", "errors", "pipelines",
                                    "by-key", "by-team"}
    savings = data["reports"]["savings"]
    total = dict(zip(savings["columns"], savings["rows"][-1]))
    assert total["stage"] == "TOTAL" and total["tokens_saved"] == 2200 and abs(total["usd_saved"] - 0.0349) < 1e-9
    assert list(tiers["reports"]) == ["tiers"]


async def test_no_requests_yet(tmp_path):
    _e, url, stop = await _serve(write_pipeline(tmp_path, tmp_path / "fresh.duckdb"), str(tmp_path / "fresh.duckdb"))
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/dashboard/api/data", headers=AUTH) as r:
                data = await r.json()
    finally:
        await stop()
    assert r.status == 200 and data["requests"] == 0 and data["message"] == "no requests yet"


async def test_dashboard_queries_never_cost_the_writer_a_row(tmp_path):
    """The writer and the dashboard share one process and one file: DuckDB refuses a second handle
    while the other is open, so both sides retry instead of failing."""
    db = tmp_path / "busy.duckdb"
    engine, url, stop = await _serve(write_pipeline(tmp_path, db), str(db))
    writer = engine.writer
    writer.flush_interval = 0.01
    try:
        stop_polling = asyncio.Event()

        async def poll():
            n = 0
            async with aiohttp.ClientSession() as s:
                while not stop_polling.is_set():
                    async with s.get(url + "/dashboard/api/data", headers=AUTH) as r:
                        assert r.status == 200, await r.text()
                    n += 1
            return n

        poller = asyncio.create_task(poll())
        for i in range(300):
            writer.submit(_finished_exchange(f"x{i}"))
            if i % 3 == 0:
                await asyncio.sleep(0.015)
        await asyncio.get_running_loop().run_in_executor(None, writer.flush)
        stop_polling.set()
        polls = await poller
    finally:
        await stop()
    assert polls > 0
    assert writer.dropped == 0 and writer.written == 300


def _finished_exchange(id):
    """A finished exchange, as the writer's rows_for reads it."""
    from lynkr.exchange import Exchange, Response, Route
    request = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    x = Exchange.new("anthropic", request, id=id, vars={"latency_ms": 1.0})
    x.upstream_request = request
    x.route = Route("up", "m")
    x.response = Response(status=200, usage={"input_tokens": 1, "output_tokens": 1})
    return x


def test_seed_helper_rows_are_consistent():
    reqs, evs = known_rows()
    assert {e["request_id"] for e in evs} <= {r["id"] for r in reqs}
    assert _req("z")["requested_model"] == "big-model"
