"""Secure defaults: client keys, admin token, redaction of provider keys, no prompt text stored."""
import json
import logging

import aiohttp
import orjson
import pytest

from lynkr.redact import redact, register_secrets
from tests.helpers.reliability_util import BODY, OPENAI_BODY, lynkr_app, post, start_upstream, telemetry_rows
from tests.helpers.anthropic_upstream import AnthropicUpstream

CLIENT_KEY = "lk-client-7f3a9c1e5b2d4a6f"
OTHER_KEY = "lk-client-0000aaaa1111bbbb"
PROVIDER_KEY = "sk-ant-api03-SECRETSECRET-0123456789abcdef"

KEYED = """
version: 1
server: {api_keys: ["%s", "%s"]}
providers:
  up: {kind: anthropic, base_url: "%s", api_key: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""


@pytest.fixture
async def upstream():
    up = AnthropicUpstream()
    runner = await start_upstream(up)
    yield up
    await runner.cleanup()


async def test_client_keys_required_when_configured(upstream, write_pipeline, tmp_path):
    pipe = write_pipeline(KEYED % (CLIENT_KEY, OTHER_KEY, upstream.url, PROVIDER_KEY))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        status, h, body = await post(url)
        assert status == 401
        err = orjson.loads(body)
        assert err["type"] == "error" and err["error"]["type"] == "authentication_error"
        assert h["x-should-retry"] == "false"

        status, _, body = await post(url, headers={"x-api-key": "lk-client-wrong-key-000000"})
        assert status == 401 and orjson.loads(body)["error"]["type"] == "authentication_error"
        # A prefix of a valid key is not a valid key.
        status, _, _ = await post(url, headers={"x-api-key": CLIENT_KEY[:-1]})
        assert status == 401

        status, _, body = await post(url, headers={"x-api-key": CLIENT_KEY})
        assert status == 200, body
        status, _, _ = await post(url, headers={"authorization": f"Bearer {OTHER_KEY}"})
        assert status == 200
        # The client's key is Lynkr's, never the upstream's: it is not forwarded.
        for sent in upstream.headers:
            assert CLIENT_KEY not in json.dumps(sent) and OTHER_KEY not in json.dumps(sent)
            assert sent.get("x-api-key") == PROVIDER_KEY

        # An OpenAI client is refused in its own envelope, whether or not its route exists yet.
        status, _, body = await post(url, "/v1/chat/completions", OPENAI_BODY)
        assert status == 401
        err = orjson.loads(body)
        assert "error" in err and isinstance(err["error"], dict) and err["error"]["message"]
        assert "type" not in err or err.get("type") != "error"

        # Health is not behind client keys (balancers and probes carry none).
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/health/live") as r:
                assert r.status == 200


async def test_no_client_keys_means_open(anthropic_upstream, write_pipeline, tmp_path):
    pipe = write_pipeline(f"""
version: 1
providers:
  up: {{kind: anthropic, base_url: "{anthropic_upstream.url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
""")
    async with lynkr_app(pipe, tmp_path) as (app, url):
        status, _, _ = await post(url)
        assert status == 200


async def test_admin_endpoints_need_the_admin_token(anthropic_upstream, write_pipeline, tmp_path, monkeypatch):
    pipe = write_pipeline(f"""
version: 1
providers:
  up: {{kind: anthropic, base_url: "{anthropic_upstream.url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
""")
    monkeypatch.delenv("LYNKR_ADMIN_TOKEN", raising=False)
    async with lynkr_app(pipe, tmp_path) as (app, url):
        async with aiohttp.ClientSession() as s:
            # No token configured: admin is off, not open.
            async with s.get(url + "/v1/admin/pipeline") as r:
                assert r.status == 403
            async with s.post(url + "/v1/admin/reload") as r:
                assert r.status == 403
            monkeypatch.setenv("LYNKR_ADMIN_TOKEN", "admin-token-5e1f0c2b9d")
            async with s.get(url + "/v1/admin/pipeline") as r:
                assert r.status == 401
            async with s.get(url + "/v1/admin/pipeline", headers={"authorization": "Bearer admin-token-5e1f0c2b9"}) as r:
                assert r.status == 401
            async with s.get(url + "/v1/admin/pipeline", headers={"authorization": "Bearer admin-token-5e1f0c2b9d"}) as r:
                assert r.status == 200
                assert "admin-token-5e1f0c2b9d" not in await r.text()
            # The dashboard is off unless the pipeline enables it, and even then behind the token.
            async with s.get(url + "/dashboard/api/data") as r:
                assert r.status in (401, 403, 404)


async def test_dashboard_needs_the_admin_token(anthropic_upstream, write_pipeline, tmp_path, monkeypatch):
    pipe = write_pipeline(f"""
version: 1
dashboard: {{enabled: true}}
providers:
  up: {{kind: anthropic, base_url: "{anthropic_upstream.url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
""")
    monkeypatch.setenv("LYNKR_ADMIN_TOKEN", "admin-token-77aa66bb55")
    async with lynkr_app(pipe, tmp_path) as (app, url):
        async with aiohttp.ClientSession() as s:
            for path in ("/dashboard", "/dashboard/api/data"):
                async with s.get(url + path) as r:
                    assert r.status == 401, path
                async with s.get(url + path, headers={"authorization": "Bearer admin-token-77aa66bb55"}) as r:
                    assert r.status == 200, path


def test_redact_masks_known_secrets_and_key_shapes():
    register_secrets(["my-own-upstream-key-42"])
    text = ("key my-own-upstream-key-42, anthropic sk-ant-api03-abcdefghijklmnop, openai sk-proj-abcdefghijklmnopqrstuvwx, "
            "aws AKIAABCDEFGHIJKLMNOP, url https://g/v1beta/models/x:generate?key=AIzaSyA-abcdefghijklmnopqrstuvwxyz0123&alt=sse, "
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload")
    out = redact(text)
    for secret in ("my-own-upstream-key-42", "sk-ant-api03-abcdefghijklmnop", "sk-proj-abcdefghijklmnopqrstuvwx",
                   "AKIAABCDEFGHIJKLMNOP", "AIzaSyA-abcdefghijklmnopqrstuvwxyz0123", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in out
    assert "&alt=sse" in out and "anthropic ***" in out
    # Placeholders are not secrets: masking them would mangle ordinary text.
    register_secrets(["ollama", "none"])
    assert redact("ollama says none") == "ollama says none"
    assert redact(None) is None


async def test_provider_key_never_reaches_client_logs_telemetry_or_explain(upstream, write_pipeline, tmp_path, caplog):
    # An upstream that quotes the rejected key back (OpenAI-compatible servers do).
    upstream.fail_next = [(401, {"type": "error", "error": {"type": "authentication_error",
                                                             "message": f"invalid x-api-key: {PROVIDER_KEY}"}})] * 4
    pipe = write_pipeline(KEYED % (CLIENT_KEY, OTHER_KEY, upstream.url, PROVIDER_KEY))
    caplog.set_level(logging.DEBUG)
    async with lynkr_app(pipe, tmp_path) as (app, url):
        status, h, body = await post(url, headers={"x-api-key": CLIENT_KEY})
        assert status >= 400
        assert PROVIDER_KEY.encode() not in body and b"***" in body
        status, _, body = await post(url, body={**BODY, "stream": True}, headers={"x-api-key": CLIENT_KEY})
        assert PROVIDER_KEY.encode() not in body
        # The admin view of the pipeline masks it too.
        app["engine"].writer.flush()
        logging.getLogger("lynkr.test").error("upstream said %s", f"no: {PROVIDER_KEY}")
        try:
            raise RuntimeError(f"connect failed with key {PROVIDER_KEY}")
        except RuntimeError:
            logging.getLogger("lynkr.test").exception("boom")
    assert PROVIDER_KEY not in caplog.text
    for rec in caplog.records:
        assert PROVIDER_KEY not in logging.Formatter().format(rec)

    from lynkr.storage.duckfile import connect_with_retry
    con = connect_with_retry(str(tmp_path / "telemetry.duckdb"), read_only=True)
    try:
        dump = json.dumps(con.execute("SELECT * FROM requests").fetchall(), default=str)
        dump += json.dumps(con.execute("SELECT * FROM stage_events").fetchall(), default=str)
    finally:
        con.close()
    assert "invalid x-api-key" in dump and PROVIDER_KEY not in dump

    from lynkr.cli.explain import explain
    req = tmp_path / "req.json"
    req.write_text(json.dumps(BODY))
    report = await explain(str(pipe), str(req))
    assert PROVIDER_KEY not in json.dumps(report, default=str)
    assert CLIENT_KEY not in json.dumps(report, default=str)


async def test_prompt_text_not_stored_unless_asked(anthropic_upstream, write_pipeline, tmp_path):
    pipe = write_pipeline(f"""
version: 1
providers:
  up: {{kind: anthropic, base_url: "{anthropic_upstream.url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
""")
    secret_prompt = "the launch code is 0000-PINEAPPLE"
    async with lynkr_app(pipe, tmp_path) as (app, url):
        status, _, _ = await post(url, body={**BODY, "messages": [{"role": "user", "content": secret_prompt}]})
        assert status == 200
        app["engine"].writer.flush()
    assert telemetry_rows(tmp_path / "telemetry.duckdb") == 1
    assert telemetry_rows(tmp_path / "telemetry.duckdb", where="WHERE prompt IS NOT NULL OR response_text IS NOT NULL") == 0


def test_default_bind_is_loopback():
    from lynkr.config.schema import BASE_SCHEMA
    assert BASE_SCHEMA["properties"]["server"]["properties"]["host"]["default"] == "127.0.0.1"
    import inspect
    from lynkr.server import run
    assert '"127.0.0.1"' in inspect.getsource(run.serve_forever)


async def test_config_errors_never_quote_a_key(anthropic_upstream, write_pipeline, tmp_path):
    # A schema error quotes the offending value; here the value is a key (a mapping where a string,
    # or a list of them, belongs).
    key = "sk-live-0a1b2c3d4e5f6a7b8c9d"
    good = write_pipeline(f"""
version: 1
providers:
  up: {{kind: anthropic, base_url: "{anthropic_upstream.url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
""")
    async with lynkr_app(good, tmp_path) as (app, url):
        engine = app["engine"]
        good.write_text(good.read_text().replace("kind: anthropic,", f'kind: anthropic, api_key: {{k: "{key}"}},'))
        assert not await engine.reload()
        assert "api_key" in engine.last_error and key not in engine.last_error
