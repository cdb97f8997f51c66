"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

A server with seeded telemetry (tests/helpers/reports_seed.py) serves /dashboard; the test
checks that each chart drew the numbers the reports give, that the page logged no console
errors, and saves a screenshot in the test's tmp dir. Chromium comes from
.ci/setup.d/20-browser.sh (never `playwright install`).
"""
import asyncio
import os
import shutil

import aiohttp
import pytest

from tests.conftest import start_app
from tests.helpers.reports_seed import seed, write_pipeline

CHROMIUM = os.environ.get("LYNKR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed (.ci/setup.d/20-browser.sh)")


@pytest.fixture
async def dashboard_server(tmp_path):
    from lynkr.engine.runtime import Engine
    from lynkr.server.app import create_app

    db = seed(tmp_path / "t.duckdb")
    engine = Engine(write_pipeline(tmp_path, db, token="s3cret"), watch=False)
    await engine.start()
    runner, url = await start_app(create_app(engine, manage_engine=False))
    yield url
    await runner.cleanup()
    await engine.stop()


async def _marks(page, chart: str) -> dict:
    return await page.eval_on_selector_all(
        f'[data-chart="{chart}"] .mark',
        "els => Object.fromEntries(els.map(e => [e.dataset.label, Number(e.dataset.value)]))")


async def test_dashboard_renders_seeded_numbers(dashboard_server, tmp_path):
    pw_api = pytest.importorskip("playwright.async_api")
    url = dashboard_server
    problems: list[str] = []
    async with pw_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text} at {m.location}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            resp = await page.goto(url + "/dashboard?token=s3cret")
            assert resp.status == 200
            await page.wait_for_selector('body[data-ready="1"]', timeout=20_000)

            # The token left the address bar (it stays in sessionStorage for this tab).
            assert "token" not in page.url

            kpis = await page.eval_on_selector_all(
                "[data-kpi]", "els => Object.fromEntries(els.map(e => [e.dataset.kpi, e.querySelector('.v').textContent]))")
            assert kpis["requests"] == "6"
            assert kpis["tokens-saved"] == "2,200"
            assert kpis["usd-saved"] == "$0.035"
            assert kpis["errors"] == "1"
            assert kpis["cache-hit-rate"] == "16.7%"

            by_stage = await _marks(page, "savings-by-stage")
            assert by_stage == pytest.approx({"cache": 0.0212, "trim": 0.002, "(model routing)": 0.0117})

            over_time = await _marks(page, "savings-over-time")
            assert len(over_time) == 4            # two days × (cost, saved)
            saved_today = [v for k, v in over_time.items() if k.endswith("saved") and v > 0]
            assert saved_today == pytest.approx([0.0349])

            by_model = await _marks(page, "by-model")
            assert by_model == {"up:big-model": 2, "up:small-model": 2, "(cache)": 1, "local:qwen2.5-coder:7b": 1}

            tiers = await _marks(page, "tier-mix")
            assert tiers == pytest.approx({"SIMPLE": 16.7, "MEDIUM": 16.7, "COMPLEX": 16.7, "(none)": 50.0})

            cache = await _marks(page, "cache")
            assert cache == pytest.approx({"exact": 16.7, "miss": 83.3})

            latency = await _marks(page, "latency")
            assert latency["total p50"] == pytest.approx(250.0)
            assert latency["total p99"] == pytest.approx(495.0)
            assert latency["overhead p50"] == pytest.approx(15.0)
            assert {k.split()[0] for k in latency} == {"total", "ttfb", "upstream", "overhead"}

            errors = await _marks(page, "errors")
            assert errors == {"529": 1}

            # Every chart drew an SVG (none fell back to "no data").
            rendered = await page.eval_on_selector_all("[data-chart]", "els => els.map(e => [e.dataset.chart, e.dataset.rendered])")
            assert all(r not in (None, "empty") for _c, r in rendered), rendered
            assert "overloaded" in await page.inner_text("#error-table")
            assert await page.is_hidden("#keys-panel"), "no client keys: no per-key table"

            # Changing the period reloads from the API: 7 days leaves out the 10-day-old request.
            await page.select_option("#since", "7d")
            await page.wait_for_selector('body[data-ready="1"]')
            await page.wait_for_function("document.querySelector('[data-kpi=requests] .v').textContent === '5'")

            shot = tmp_path / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000

            # Without the token the page is refused, and the API too.
            anon = await browser.new_context()
            p2 = await anon.new_page()
            r2 = await p2.goto(url + "/dashboard")
            assert r2.status == 401
            await anon.close()
        finally:
            await browser.close()
    assert not problems, problems


async def test_dashboard_api_refuses_without_token(dashboard_server):
    async with aiohttp.ClientSession() as s:
        async with s.get(dashboard_server + "/dashboard/api/data") as r:
            assert r.status == 401
        async with s.get(dashboard_server + "/dashboard/api/data", headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401


async def test_dashboard_with_no_requests_yet(tmp_path):
    """A fresh install: every chart says so, and the page still logs no error."""
    pw_api = pytest.importorskip("playwright.async_api")
    from lynkr.engine.runtime import Engine
    from lynkr.server.app import create_app

    db = str(tmp_path / "fresh.duckdb")
    engine = Engine(write_pipeline(tmp_path, db, token="s3cret"), watch=False, telemetry_path=db)
    await engine.start()
    runner, url = await start_app(create_app(engine, manage_engine=False))
    problems: list[str] = []
    try:
        async with pw_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = await browser.new_page()
                page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
                await page.goto(url + "/dashboard?token=s3cret")
                await page.wait_for_selector('body[data-ready="1"]', timeout=20_000)
                assert (await page.inner_text("#status")).strip() == "no requests yet"
                rendered = await page.eval_on_selector_all("[data-chart]", "els => els.map(e => e.dataset.rendered)")
                assert rendered and set(rendered) == {"empty"}
                assert await page.inner_text('[data-kpi="requests"] .v') == "0"
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
        await engine.stop()
    assert not problems, problems


async def test_the_per_key_table_shows_spend_and_refusals_per_key_and_team(anthropic_upstream, tmp_path):
    """With client keys, the page's per-key table has a row per key (its team, requests, refusals at
    the door, tokens, spend, live requests in the last 60 s) and one per team."""
    pw_api = pytest.importorskip("playwright.async_api")
    from tests.helpers.reliability_util import lynkr_app, post

    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"""
version: 1
providers:
  up: {{kind: anthropic, base_url: "{anthropic_upstream.url}"}}
models:
  claude-x: {{input: 1000, output: 0}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
keys:
  dana: {{secret: "table-a-0123456789abcdef", team: web, limits: {{rpm: 1}}}}
  eli: {{secret: "table-b-0123456789abcdef"}}
teams:
  web: {{}}
server: {{admin_token: "s3cret"}}
dashboard: {{enabled: true}}
""")
    async with lynkr_app(pipe, tmp_path) as (app, url):
        for key in ("table-a-0123456789abcdef", "table-a-0123456789abcdef", "table-b-0123456789abcdef"):
            await post(url, headers={"x-api-key": key})
        await asyncio.get_running_loop().run_in_executor(None, app["engine"].writer.flush)
        async with pw_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 1400})
                await page.goto(url + "/dashboard?token=s3cret")
                await page.wait_for_selector('body[data-ready="1"]', timeout=20_000)
                assert await page.is_visible("#keys-panel")
                rows = await page.eval_on_selector_all(
                    "#keys-table tr", "trs => trs.map(tr => [...tr.children].map(td => td.textContent))")
                teams = await page.eval_on_selector_all(
                    "#teams-table tr", "trs => trs.map(tr => [...tr.children].map(td => td.textContent))")
            finally:
                await browser.close()
    head = rows[0]
    table = {r[0]: dict(zip(head, r)) for r in rows[1:]}
    assert table["dana"]["team"] == "web" and table["dana"]["requests"] == "1" and table["dana"]["refused"] == "1"
    assert table["dana"]["spent"] == "$0.010" and table["dana"]["tokens"] == "13"      # 10 in, 3 out
    assert table["dana"]["requests last 60 s"] == "1"
    assert table["eli"]["requests"] == "1" and table["eli"]["refused"] == "0"
    assert {r[0] for r in teams[1:]} == {"web", "(none)"}
