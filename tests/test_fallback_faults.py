"""Fault tests: every way an upstream fails, with a fallback configured and without. The client
always gets a well-formed answer or an error in its own protocol; fallback happens only before
the first byte; retries honour Retry-After; the breaker opens and recovers."""
from __future__ import annotations

import pytest

from tests.conftest import free_port
from tests.helpers.provider_doubles import Answer, provider_yaml
from tests.helpers.provider_harness import (check_no_error_mid_block, check_stream, make_double, pipeline, post,
                                            serve_double)

FAULTS = {
    "500": ({"status": 500}, 500),
    "429": ({"status": 429, "retry_after": 100}, 429),
    "refused": (None, 502),
    "read_timeout": ({"hang": 3}, 504),
    "reset": ({"reset": True}, 502),
    "garbage": ({"garbage": True}, 502),
}


@pytest.fixture
async def runners():
    rs = []
    yield rs
    for r in rs:
        await r.cleanup()


async def setup(kind, runners, lynkr, write_pipeline, *, fallback: bool, primary_extra: str = "",
                refused: bool = False, primary_script=None):
    primary = make_double(kind, primary_script or [Answer(text="from primary")])
    purl = await serve_double(primary, runners)
    if refused:
        purl = f"http://127.0.0.1:{free_port()}"
    backup = make_double("anthropic", [Answer(text="from fallback")])
    burl = await serve_double(backup, runners)
    extra = primary_extra
    if "retry:" not in extra:
        extra += ", retry: {attempts: 1}"
    if "timeouts:" not in extra:
        extra += ", timeouts: {connect: 5}"
    providers = provider_yaml(kind, purl, "p", extra) + provider_yaml("anthropic", burl, "fb")
    stages = "  - {id: call, uses: provider_call, with: {to: 'p:model-a'}" + (", on_error: backup}\n" if fallback else "}\n")
    if fallback:
        stages += "  - {id: backup, uses: fallback, with: {to: ['fb:claude-b']}}\n"
    engine, base = await lynkr(write_pipeline(pipeline(providers, stages)))
    return primary, backup, base, engine


def body(stream: bool) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]}


@pytest.mark.parametrize("fallback", [False, True], ids=["alone", "fallback"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_before_first_byte(fault, stream, fallback, runners, lynkr, write_pipeline):
    spec, expect_status = FAULTS[fault]
    # Short limits only where the fault is a hang, so a slow CI machine cannot trip them elsewhere.
    limits = ", timeouts: {read: 0.5, first_byte: 0.5, connect: 5}" if fault == "read_timeout" else ""
    primary, backup, base, _e = await setup("openai", runners, lynkr, write_pipeline, fallback=fallback,
                                            refused=spec is None, primary_extra=limits)
    if spec:
        primary.faults.append(spec)
    status, headers, out = await post(base, body(stream))
    assert headers["x-lynkr-request-id"]
    if fallback:
        assert status == 200, out
        msg = check_stream(out) if stream else out
        assert msg["content"][0]["text"] == "from fallback"
        assert headers["x-lynkr-fallback"] == "fb:claude-b"
        assert headers["x-lynkr-provider"] == "fb"
        assert len(backup.requests) == 1
    else:
        assert status == expect_status, out
        assert out["type"] == "error" and out["error"]["message"]
        assert headers["x-lynkr-provider"] == "p"
        assert "x-lynkr-fallback" not in headers
        if fault == "429":
            assert headers["retry-after"] == "100" and headers["x-should-retry"] == "true"


@pytest.mark.parametrize("kind", ["openai", "ollama", "bedrock", "gemini", "anthropic"])
@pytest.mark.parametrize("fallback", [False, True], ids=["alone", "fallback"])
async def test_stream_dies_after_first_byte(kind, fallback, runners, lynkr, write_pipeline):
    """Once the client saw bytes, no fallback: the stream ends with one well-formed error event."""
    primary, backup, base, _e = await setup(kind, runners, lynkr, write_pipeline, fallback=fallback,
                                            primary_script=[Answer(text="one two three four five six seven eight nine ten")])
    primary.faults.append({"die_after": 4})
    status, _h, out = await post(base, body(True))
    assert status == 200
    err = check_no_error_mid_block(out)
    assert err["type"] == "error" and err["error"]["type"] in ("api_error", "overloaded_error", "timeout_error")
    assert backup.requests == []


async def test_bedrock_exception_frame_mid_stream(runners, lynkr, write_pipeline):
    primary, _b, base, _e = await setup("bedrock", runners, lynkr, write_pipeline, fallback=True)
    primary.faults.append({"exception": "throttlingException", "message": "Too many tokens, please wait."})
    status, _h, out = await post(base, body(True))
    assert status == 200
    err = check_no_error_mid_block(out)
    assert err["error"]["type"] == "rate_limit_error"
    assert "Too many tokens" in err["error"]["message"]


async def test_retry_then_success_honours_retry_after(runners, lynkr, write_pipeline):
    primary, backup, base, _e = await setup("openai", runners, lynkr, write_pipeline, fallback=True,
                                            primary_extra=", retry: {attempts: 3, base_s: 0.01}")
    primary.faults += [{"status": 429, "retry_after": 0}, {"status": 503}]
    status, headers, out = await post(base, body(False))
    assert status == 200 and out["content"][0]["text"] == "from primary"
    assert len(primary.requests) == 3 and backup.requests == []
    assert "x-lynkr-fallback" not in headers


async def test_long_retry_after_is_relayed_not_waited(runners, lynkr, write_pipeline):
    primary, _b, base, _e = await setup("ollama", runners, lynkr, write_pipeline, fallback=False,
                                        primary_extra=", retry: {attempts: 3, max_retry_after_s: 5}")
    primary.faults.append({"status": 429, "retry_after": 120})
    status, headers, out = await post(base, body(False))
    assert status == 429 and headers["retry-after"] == "120"
    assert len(primary.requests) == 1


@pytest.mark.parametrize("kind", ["ollama", "openai", "bedrock", "anthropic"])
async def test_fatal_errors_are_relayed_with_provider_wording(kind, runners, lynkr, write_pipeline):
    """Context-length errors: no retry, no fallback, a 400 with the provider's own words (Claude Code
    compacts when it reads "prompt is too long" / Bedrock's "Input is too long.")."""
    primary, backup, base, _e = await setup(kind, runners, lynkr, write_pipeline, fallback=True,
                                            primary_extra=", retry: {attempts: 3}")
    wording = "Input is too long." if kind == "bedrock" else "prompt is too long: 212000 tokens > 200000 maximum"
    primary.faults.append({"status": 400, "message": wording})
    status, headers, out = await post(base, body(True))
    assert status == 400
    assert out["error"]["type"] == "invalid_request_error" and out["error"]["message"] == wording
    assert headers["x-should-retry"] == "false"
    assert len(primary.requests) == 1 and backup.requests == []


async def test_auth_error_is_fatal(runners, lynkr, write_pipeline):
    primary, backup, base, _e = await setup("openai", runners, lynkr, write_pipeline, fallback=True)
    primary.faults.append({"status": 401, "message": "Incorrect API key provided"})
    status, _h, out = await post(base, body(False))
    assert status == 401 and out["error"]["type"] == "authentication_error"
    assert backup.requests == []


async def test_model_not_found_falls_back(runners, lynkr, write_pipeline):
    primary, backup, base, _e = await setup("ollama", runners, lynkr, write_pipeline, fallback=True)
    primary.faults.append({"status": 404, "message": "model 'model-a' not found, try pulling it first"})
    status, headers, out = await post(base, body(False))
    assert status == 200 and out["content"][0]["text"] == "from fallback"
    assert headers["x-lynkr-fallback"] == "fb:claude-b"


async def test_breaker_opens_and_recovers(runners, lynkr, write_pipeline):
    primary, backup, base, engine = await setup(
        "openai", runners, lynkr, write_pipeline, fallback=True,
        primary_extra=", breaker: {threshold: 2, window_s: 60, cooldown_s: 60}")
    primary.faults += [{"status": 500}, {"status": 500}]
    for _ in range(2):
        status, _h, _o = await post(base, body(False))
        assert status == 200                         # served by the fallback
    assert len(primary.requests) == 2
    breaker = engine.shared["provider_breakers"].get("p", "model-a")
    assert breaker.state == "open"
    # Open: the primary is not even tried.
    status, headers, _o = await post(base, body(False))
    assert status == 200 and headers["x-lynkr-fallback"] == "fb:claude-b"
    assert len(primary.requests) == 2
    breaker.opened_at -= 61                          # the cooldown has passed (no sleeping in tests)
    # Half-open: one probe goes through, succeeds, and the breaker closes.
    status, headers, out = await post(base, body(False))
    assert status == 200 and out["content"][0]["text"] == "from primary" and "x-lynkr-fallback" not in headers
    assert breaker.state == "closed"
    status, _h, out = await post(base, body(False))
    assert out["content"][0]["text"] == "from primary"
    assert len(primary.requests) == 4


async def test_breaker_open_without_fallback_is_503_with_retry_after(runners, lynkr, write_pipeline):
    primary, _b, base, _e = await setup("openai", runners, lynkr, write_pipeline, fallback=False,
                                        primary_extra=", breaker: {threshold: 1, cooldown_s: 60}")
    primary.faults.append({"status": 502})
    await post(base, body(False))
    status, headers, out = await post(base, body(False))
    assert status == 503 and out["error"]["type"] == "overloaded_error"
    assert int(headers["retry-after"]) > 0
    assert len(primary.requests) == 1


async def test_all_fallbacks_fail_relays_primary_error(runners, lynkr, write_pipeline):
    primary, backup, base, _e = await setup("openai", runners, lynkr, write_pipeline, fallback=True)
    primary.faults.append({"status": 503, "message": "primary overloaded"})
    backup.faults += [{"status": 500, "message": "backup broken"}] * 2     # its own retry fails too
    status, headers, out = await post(base, body(True))
    assert status == 503 and out["error"]["message"] == "primary overloaded"
    assert "x-lynkr-fallback" not in headers


async def _post_openai(base, path, payload):
    import aiohttp
    import orjson
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        async with s.post(base + path, json=payload) as r:
            return r.status, r.headers.copy(), await r.read()


async def test_openai_clients_get_errors_in_their_own_shape(runners, lynkr, write_pipeline):
    """Chat Completions and Responses clients see the same failures in their protocols: an HTTP
    error body before the first byte, an error event after it."""
    import orjson
    primary, _b, base, _e = await setup("ollama", runners, lynkr, write_pipeline, fallback=False,
                                        primary_script=[Answer(text="one two three four five six seven")])
    primary.faults.append({"status": 429, "retry_after": 100})
    chat = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
    status, headers, raw = await _post_openai(base, "/v1/chat/completions", chat)
    assert status == 429 and headers["x-lynkr-provider"] == "p"
    err = orjson.loads(raw)["error"]
    assert err["message"] == "simulated 429" and "type" in err
    primary.faults.append({"die_after": 3})
    status, _h, raw = await _post_openai(base, "/v1/chat/completions", {**chat, "stream": True})
    assert status == 200
    frames = [f for f in raw.decode().split("\n\n") if f.startswith("data: ")]
    assert any('"error"' in f for f in frames), frames
    primary.faults.append({"die_after": 3})
    status, _h, raw = await _post_openai(base, "/v1/responses", {"model": "gpt-x", "input": "hi", "stream": True})
    assert status == 200
    assert b"response.failed" in raw or b"event: error" in raw, raw[-400:]
    assert b"response.completed" not in raw


async def test_breaker_state_visible_and_resettable(runners, lynkr, write_pipeline, monkeypatch):
    import aiohttp
    monkeypatch.setenv("LYNKR_ADMIN_TOKEN", "admin-secret-token")
    primary, _b, base, _e = await setup("openai", runners, lynkr, write_pipeline, fallback=True,
                                        primary_extra=", breaker: {threshold: 1, cooldown_s: 60}")
    primary.faults.append({"status": 503})
    await post(base, body(False))
    async with aiohttp.ClientSession() as s:
        async with s.get(base + "/v1/health/providers") as r:
            state = await r.json()
        assert state["breakers"]["p:model-a"]["state"] == "open"
        assert state["providers"]["p"]["kind"] == "openai"
        async with s.post(base + "/v1/admin/circuit-breakers/reset") as r:
            assert r.status in (401, 403)
        async with s.post(base + "/v1/admin/circuit-breakers/reset",
                          headers={"authorization": "Bearer admin-secret-token"}) as r:
            assert r.status == 200 and (await r.json())["breakers"]["p:model-a"]["state"] == "closed"
    status, _h, out = await post(base, body(False))
    assert out["content"][0]["text"] == "from primary"


async def test_router_fallbacks_go_first(runners, lynkr, write_pipeline):
    """A stage that routes may name fallbacks for its choice (tier_route's `fallbacks:` publishes
    vars.route_fallbacks); they are tried before the fallback stage's own targets."""
    primary = make_double("openai", [Answer(text="from primary")])
    purl = await serve_double(primary, runners)
    tier_fb = make_double("ollama", [Answer(text="from tier fallback")])
    turl = await serve_double(tier_fb, runners)
    backup = make_double("anthropic", [Answer(text="from fallback")])
    burl = await serve_double(backup, runners)
    stage_file = write_pipeline(
        "from lynkr.stage import Stage\n"
        "class Pick(Stage):\n"
        "    name = 'pick'\n"
        "    async def run(self, x):\n"
        "        x.vars['route_fallbacks'] = ['t:qwen:7b']\n", name="pick.py")
    providers = (provider_yaml("openai", purl, "p", ", retry: {attempts: 1}") + provider_yaml("ollama", turl, "t")
                 + provider_yaml("anthropic", burl, "fb"))
    stages = (f"  - {{id: pick, uses: '{stage_file}:Pick'}}\n"
              "  - {id: call, uses: provider_call, needs: [pick], with: {to: 'p:model-a'}, on_error: backup}\n"
              "  - {id: backup, uses: fallback, with: {to: 'fb:claude-b'}}\n")
    _e, base = await lynkr(write_pipeline(pipeline(providers, stages)))
    primary.faults.append({"status": 503})
    status, headers, out = await post(base, body(False))
    assert status == 200 and out["content"][0]["text"] == "from tier fallback"
    assert headers["x-lynkr-fallback"] == "t:qwen:7b" and backup.requests == []


@pytest.mark.parametrize("kind", ["openai", "ollama", "bedrock"])
async def test_stream_that_goes_silent_ends_at_the_read_timeout(kind, runners, lynkr, write_pipeline):
    """An upstream that stops sending mid-stream with the connection open: the client's stream ends
    with an error event once `timeouts.read` passes, instead of hanging."""
    primary, backup, base, _e = await setup(kind, runners, lynkr, write_pipeline, fallback=True,
                                            primary_extra=", timeouts: {read: 0.5, first_byte: 5, connect: 5}",
                                            primary_script=[Answer(text="one two three four five six seven eight")])
    primary.faults.append({"stall_after": 4})
    status, _h, out = await post(base, body(True), timeout=20)
    assert status == 200
    err = check_no_error_mid_block(out)
    assert err["error"]["type"] == "timeout_error"
    assert backup.requests == []
