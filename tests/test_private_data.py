"""Nothing private leaks: not into /metrics, not to the wrong upstream, not into telemetry, not into
what a web page or a rebound DNS name can reach."""
import asyncio
import logging
import os

import aiohttp
import orjson
import pytest

from lynkr.storage.duckfile import connect_with_retry
from tests.helpers.anthropic_upstream import AnthropicUpstream
from tests.helpers.reliability_util import BODY, OPENAI_BODY, lynkr_app, post, start_upstream, telemetry_rows

PIPE = """
version: 1
providers:
  up: {kind: anthropic, base_url: "%s"}
models: {claude-x: {}}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""

# Model names a client may invent (each is one request): the series do not grow with them, so CI
# runs 2,000; LYNKR_LABEL_NAMES=20000 is the figure in docs/reliability.md.
MODEL_NAMES = int(os.environ.get("LYNKR_LABEL_NAMES", "2000"))


@pytest.fixture
async def upstream():
    up = AnthropicUpstream()
    runner = await start_upstream(up)
    yield up
    await runner.cleanup()


async def test_metric_labels_come_from_the_config(upstream, write_pipeline, tmp_path):
    """Client-chosen model names never become label values: 20,000 distinct names (one of them
    secret-looking) leave /metrics under 100 KB with the same series as after one unknown name;
    they count under model="other", a configured model under its own name."""
    # Shedding off: this test's own load on a shared CI machine reads as event-loop lag.
    p = write_pipeline(PIPE % upstream.url + "server: {shed: {enabled: false}}\n")
    secret = "mdl-secret-4f9a1c77e2b04d6b"
    async with lynkr_app(p, tmp_path) as (_app, url):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:
            async def one(model):
                async with s.post(url + "/v1/messages", json={**BODY, "model": model}) as r:
                    assert r.status == 200, await r.text()

            await one("claude-x")
            await one(secret)
            async with s.get(url + "/metrics") as r:
                small = await r.text()
            for start in range(0, MODEL_NAMES, 100):
                await asyncio.gather(*(one(f"made-up-{i}") for i in range(start, min(MODEL_NAMES, start + 100))))
            async with s.get(url + "/metrics") as r:
                text = await r.text()
    size = len(text.encode())
    print(f"/metrics after {MODEL_NAMES} distinct model names: {size} bytes, {text.count(chr(10))} lines "
          f"(after one: {len(small.encode())} bytes, {small.count(chr(10))} lines)")
    with_model = lambda t: {line.rsplit(" ", 1)[0] for line in t.splitlines() if 'model="' in line}
    assert size < 100_000 and with_model(text) == with_model(small)
    assert secret not in text and "made-up-" not in text and "\x00" not in text
    assert 'model="other"' in text and 'model="claude-x"' in text


async def test_an_openai_clients_key_never_reaches_an_anthropic_upstream(upstream, write_pipeline, tmp_path):
    """Without client keys, an Anthropic client's own key is forwarded to an Anthropic upstream that
    has none; an OpenAI client's `Authorization: Bearer sk-proj-…` is not (made for another API)."""
    p = write_pipeline(PIPE % upstream.url)
    openai_key = "sk-proj-" + "A1b2C3d4" * 4
    async with lynkr_app(p, tmp_path) as (_app, url):
        assert (await post(url, "/v1/chat/completions", {**OPENAI_BODY, "model": "claude-x"},
                           headers={"authorization": f"Bearer {openai_key}"}))[0] == 200
        assert (await post(url, headers={"x-api-key": "sk-ant-own-key-0123456789"}))[0] == 200
    first, second = ({k.lower(): v for k, v in h.items()} for h in upstream.headers)
    assert "authorization" not in first and "x-api-key" not in first
    assert openai_key not in str(first)
    assert second["x-api-key"] == "sk-ant-own-key-0123456789"


async def test_a_forwarded_credential_echoed_back_is_masked(upstream, write_pipeline, tmp_path, caplog):
    """An upstream that quotes the client's forwarded credential in its 401 (any shape, not only a
    known key pattern) has it masked in the client's error, the log and `requests.error`."""
    p = write_pipeline(PIPE % upstream.url)
    token = "oauth-Zq81xKpL0vWm27Tt"
    upstream.fail_next.append((401, {"type": "error", "error": {"type": "authentication_error",
                                                                "message": f"invalid x-api-key: {token}"}}))
    caplog.set_level(logging.DEBUG)
    async with lynkr_app(p, tmp_path) as (app, url):
        status, _h, raw = await post(url, headers={"x-api-key": token})
        app["engine"].writer.flush()
    assert status == 401 and token not in raw.decode() and "***" in raw.decode()
    assert token not in caplog.text
    con = connect_with_retry(str(tmp_path / "telemetry.duckdb"), read_only=True)
    try:
        errors = [r[0] for r in con.execute("SELECT error FROM requests").fetchall()]
    finally:
        con.close()
    assert errors and all(token not in (e or "") for e in errors)


async def test_provider_urls_with_credentials_are_masked(upstream, write_pipeline, tmp_path):
    """A base_url with `user:password@` is shown without the password on /v1/health/providers."""
    port = upstream.url.rsplit(":", 1)[1]
    p = write_pipeline(PIPE % f"http://proxyuser:hunter2-passw0rd@127.0.0.1:{port}")
    async with lynkr_app(p, tmp_path) as (_app, url):
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/health/providers") as r:
                text = await r.text()
    assert r.status == 200 and "hunter2-passw0rd" not in text and "127.0.0.1" in text


async def test_admin_token_in_the_query_string_is_refused_on_post(upstream, write_pipeline, tmp_path, monkeypatch):
    """`?token=` opens GET pages (the dashboard link) only: a POST such as /v1/admin/reload needs the
    token in a header, so a cross-site form or a logged URL cannot trigger it."""
    monkeypatch.setenv("LYNKR_ADMIN_TOKEN", "admin-token-5e1f0c2b9d")
    p = write_pipeline(PIPE % upstream.url)
    async with lynkr_app(p, tmp_path) as (_app, url):
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/admin/reload?token=admin-token-5e1f0c2b9d") as r:
                assert r.status == 401
            async with s.post(url + "/v1/admin/reload", headers={"x-lynkr-admin-token": "admin-token-5e1f0c2b9d"}) as r:
                assert r.status == 200


async def test_web_pages_and_rebound_dns_names_are_refused(upstream, write_pipeline, tmp_path, monkeypatch):
    """A cross-origin `text/plain` POST (a web page needs no preflight for it) and a request whose
    Host is not a loopback name (DNS rebinding) get 403 in the client's shape and reach no
    upstream; CLIs (no Origin), localhost pages, and origins the operator allows are served."""
    monkeypatch.delenv("LYNKR_ORIGINS", raising=False)
    p = write_pipeline(PIPE % upstream.url + 'server: {allowed_origins: ["http://localhost:*", "https://app.example"]}\n')
    raw = orjson.dumps(BODY)
    plain = {"content-type": "text/plain"}
    async with lynkr_app(p, tmp_path) as (_app, url):
        status, _h, body = await post(url, data=raw, headers={**plain, "origin": "https://evil.example"})
        assert status == 403 and orjson.loads(body)["error"]["type"] == "permission_error"
        status, _h, body = await post(url, data=raw, headers={"host": "attacker.example:8081"})
        assert status == 403 and b"Host" in body
        status, _h, _b = await post(url, "/v1/chat/completions", OPENAI_BODY, headers={"origin": "http://evil.example"})
        assert status == 403
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/health/providers", headers={"host": "rebound.example"}) as r:
                assert r.status == 403
        assert upstream.requests == []
        assert (await post(url))[0] == 200
        assert (await post(url, headers={"origin": "http://localhost:5173"}))[0] == 200
        assert (await post(url, headers={"origin": "https://app.example"}))[0] == 200
    monkeypatch.setenv("LYNKR_ORIGINS", "https://evil.example")       # the operator's addition
    async with lynkr_app(p, tmp_path) as (_app, url):
        assert (await post(url, data=raw, headers={**plain, "origin": "https://evil.example"}))[0] == 200


SCORED = """
version: 1
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: score, uses: score}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""


async def test_score_evidence_is_not_stored_without_content(upstream, write_pipeline, tmp_path):
    """With `telemetry.content: false`, stage_events.detail keeps the score, tier and points but no
    words of the prompt (the score's evidence quotes it)."""
    p = write_pipeline(SCORED % upstream.url)
    prompt = ("Prove the lock-free queue in src/queue_impl.rs is linearizable and fix the race in production "
              "before the security audit; password hunter2xyz")
    async with lynkr_app(p, tmp_path) as (app, url):
        assert (await post(url, body={**BODY, "messages": [{"role": "user", "content": prompt}]}))[0] == 200
        app["engine"].writer.flush()
    con = connect_with_retry(str(tmp_path / "telemetry.duckdb"), read_only=True)
    try:
        detail = con.execute("SELECT detail FROM stage_events WHERE stage_id = 'score'").fetchone()[0]
    finally:
        con.close()
    d = orjson.loads(detail)
    assert d["tier"] and d["points"]
    for word in ("queue_impl", "linearizable", "production", "security", "hunter2xyz", "race", "prove"):
        assert word not in detail.lower(), (word, detail)


ROWLESS = """from lynkr.stage import Stage
class Odd(Stage):
    name = "odd"
    options_schema = {"type": "object"}
    async def run(self, x):
        x.event(self.id).detail = {1: "a detail no JSON encoder takes"}
"""


async def test_every_answer_has_a_telemetry_row_or_a_counted_drop(upstream, write_pipeline, tmp_path):
    """A request whose row cannot be built (here a stage detail the encoder refuses) is counted in
    lynkr_telemetry_rows_dropped_total: written + dropped equals the requests answered."""
    (tmp_path / "odd.py").write_text(ROWLESS)
    p = write_pipeline("""
version: 1
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: odd, uses: ./odd.py:Odd}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
""" % upstream.url)
    async with lynkr_app(p, tmp_path) as (app, url):
        for _ in range(3):
            assert (await post(url))[0] == 200
        writer = app["engine"].writer
        writer.flush()
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/metrics") as r:
                text = await r.text()
    assert telemetry_rows(tmp_path / "telemetry.duckdb") + writer.dropped == 3
    assert "lynkr_telemetry_rows_dropped_total 3" in text


async def test_client_strings_are_printable_wherever_they_land(upstream, write_pipeline, tmp_path, caplog):
    """A session id with control characters (an ANSI escape, a NUL, a CR) reaches telemetry and the
    log without them, and no response header carries one."""
    p = write_pipeline(PIPE % upstream.url)
    nasty = "sess\x1b[31m\x00\rforged"
    caplog.set_level(logging.DEBUG)
    async with lynkr_app(p, tmp_path) as (app, url):
        status, headers, _raw = await post(url, body={**BODY, "metadata": {"user_id": nasty}})
        logging.getLogger("lynkr.test").warning("session %s", nasty)
        app["engine"].writer.flush()
    assert status == 200
    assert all(v.isprintable() for v in headers.values())
    con = connect_with_retry(str(tmp_path / "telemetry.duckdb"), read_only=True)
    try:
        session = con.execute("SELECT session FROM requests").fetchone()[0]
    finally:
        con.close()
    assert session and session.isprintable() and "forged" in session
    assert "\x1b" not in caplog.text and "\x00" not in caplog.text
