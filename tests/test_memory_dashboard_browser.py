"""The dashboard's memory panel in a real browser (Debian's Chromium, headless, Playwright): it lists
what the memory stage remembers for each project, and its forget button deletes a memory — the
proxy stops injecting it. Hidden when the pipeline has no memory stage (tests/test_dashboard_browser.py
checks that page logs no console errors)."""
import asyncio
import os
import shutil

import aiohttp
import pytest

from tests.conftest import start_app
from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message

CHROMIUM = os.environ.get("LYNKR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed (.ci/setup.d/20-browser.sh)")

APP = "/home/dev/shop-api"
PIPELINE = """
version: 1
state_dir: {state}
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: memory, uses: memory}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
dashboard: {{enabled: true}}
server: {{admin_token: s3cret}}
"""


def body(text: str) -> dict:
    return {"model": "claude-test", "max_tokens": 50, "messages": [{"role": "user", "content": text}],
            "system": [{"type": "text", "text": f"<env>\nPrimary working directory: {APP}\n</env>"}]}


async def test_memory_panel_lists_and_forgets(tmp_path, write_pipeline, lynkr):
    pw_api = pytest.importorskip("playwright.async_api")
    up = AnthropicUpstream(lambda b: text_message("Noted."))
    runner, url = await start_app(up.app())
    problems: list[str] = []
    try:
        engine, base = await lynkr(write_pipeline(PIPELINE.format(state=tmp_path / "state", url=url)))
        async with aiohttp.ClientSession() as s:
            await s.post(base + "/v1/messages", json=body("Note: the invoices bucket is s3://okapi-invoices."))
            for _ in range(500):            # learning happens after the response
                async with s.get(base + "/dashboard/api/memory", headers={"Authorization": "Bearer s3cret"}) as r:
                    if (await r.json())["memories"]:
                        break
                await asyncio.sleep(0.02)
        async with pw_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 1600})
                page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
                await page.goto(base + "/dashboard?token=s3cret")
                await page.wait_for_selector('body[data-ready="1"]', timeout=20_000)
                assert await page.is_visible("#memory-panel")
                rows = await page.eval_on_selector_all("#memory-table tr[data-memory]", "els => els.map(e => e.textContent)")
                assert len(rows) == 1 and "okapi-invoices" in rows[0] and APP in rows[0]
                await page.click("#memory-table button[data-forget]")
                await page.wait_for_selector("#memory-table tr[data-memory]", state="detached", timeout=10_000)
                await page.screenshot(path=str(tmp_path / "memory-panel.png"), full_page=True)
            finally:
                await browser.close()
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/dashboard/api/memory", headers={"Authorization": "Bearer s3cret"}) as r:
                assert (await r.json())["memories"] == []
            await s.post(base + "/v1/messages", json=body("Which bucket holds the invoices?"))
        assert "<lynkr-memory>" not in str(up.requests[-1]["messages"])
    finally:
        await runner.cleanup()
    assert problems == []
