"""A malformed request is the client's fault: one 400 (413 past a limit) in its own protocol's shape,
answered before any stage or provider runs, and nothing it does changes what other clients get.

Each case here is a request that used to get through: to a 5xx, to a provider adapter that raised
(and opened the circuit breaker for every client), to a response header, or to the upstream.
"""
import aiohttp
import orjson
import pytest

from tests.helpers.anthropic_upstream import AnthropicUpstream
from tests.helpers.reliability_util import BODY, lynkr_app, post, start_upstream

PIPE = """
version: 1
providers:
  up: {kind: anthropic, base_url: "%s"}
  backup: {kind: anthropic, base_url: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}, on_error: fb}
  - {id: fb, uses: fallback, with: {to: ["backup:claude-b"]}}
"""

IMG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%not-base64%%%"}}
USER = {"role": "user", "content": "hi"}
CALL = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}]}

# (path, body, what the error names)
BAD = [
    ("/v1/messages", {**BODY, "system": [3]}, "system[0]"),
    ("/v1/messages", {**BODY, "system": [{"type": "text", "text": 3}]}, "system[0]"),
    ("/v1/messages", {**BODY, "messages": [{"role": "user", "content": [{"type": "mystery", "x": 1}]}]}, "type"),
    ("/v1/messages", {**BODY, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_nowhere", "content": "ok"}]}]}, "tool_use_id"),
    ("/v1/messages", {**BODY, "messages": [{"role": "user", "content": [IMG]}]}, "base64"),
    ("/v1/messages", {**BODY, "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "text"),
    ("/v1/messages", {**BODY, "tools": [{"name": 5}]}, "tools[0].name"),
    # Near the shapes the validator accepts in one expression: each still named.
    ("/v1/messages", {**BODY, "messages": [CALL, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok", "is_error": 1}]}]}, "is_error"),
    ("/v1/messages", {**BODY, "messages": [CALL, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": ["toolu_1"], "content": "ok"}]}]}, "tool_use_id"),
    ("/v1/messages", {**BODY, "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": None}]}]}, "input"),
    ("/v1/messages", {**BODY, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi", "cache_control": "yes"}]}]}, "cache_control"),
    ("/v1/messages", {**BODY, "tools": [{"name": "Read", "input_schema": []}]}, "tools[0].input_schema"),
    ("/v1/messages", {**BODY, "max_tokens": 2 ** 40}, "max_tokens"),
    ("/v1/messages", {**BODY, "stream": "yes"}, "stream"),
    ("/v1/messages", {**BODY, "metadata": {"user_id": 7}}, "metadata.user_id"),
    ("/v1/messages", {k: v for k, v in BODY.items() if k != "model"}, "model"),
    ("/v1/messages", {**BODY, "model": "claude\r\nx-injected: 1"}, "model"),
    ("/v1/messages", {**BODY, "model": "claude\x00x"}, "model"),
    ("/v1/messages", {**BODY, "model": "m" * 300}, "model"),
    ("/v1/messages/count_tokens", {"messages": 5}, "messages"),
    ("/v1/messages/count_tokens", {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}, "text"),
    ("/v1/messages/count_tokens", {"messages": [USER], "system": {"a": 1}}, "system"),
    ("/v1/messages/count_tokens", {"messages": [USER], "tools": "all"}, "tools"),
    ("/v1/responses", {"model": "m", "input": [{"type": "message", "role": "user", "content": 5}]}, "content"),
    ("/v1/responses", {"model": "m", "input": [{"type": "function_call", "call_id": 1, "name": "f"}]}, "call_id"),
    ("/v1/responses", {"model": "m", "input": "hi", "tools": [{"type": "function", "parameters": []}]}, "parameters"),
    ("/v1/responses", {"model": "m", "input": "hi", "max_output_tokens": "10"}, "max_output_tokens"),
    ("/v1/responses", {"model": "m", "input": "hi", "include": [1]}, "include"),
    ("/v1/responses", {"model": "m", "input": [{"type": "bogus"}]}, "type"),
    ("/v1/responses", {"input": "hi"}, "model"),
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url",
                              "image_url": {"url": "data:image/png;base64,@@@"}}]}]}, "base64"),
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": 3}]}]},
     "function"),
    ("/v1/chat/completions", {"model": "m", "messages": [USER], "n": -1}, "n"),
    ("/v1/chat/completions", {"model": "m\tx\x7f", "messages": [USER]}, "model"),
]


@pytest.fixture
async def upstreams():
    ups = [AnthropicUpstream(), AnthropicUpstream()]
    runners = [await start_upstream(u) for u in ups]
    yield ups
    for r in runners:
        await r.cleanup()


def _client_shape(path: str, status: int, raw: bytes) -> dict:
    err = orjson.loads(raw)
    if path.startswith("/v1/messages"):
        assert err["type"] == "error" and err["error"]["type"] in ("invalid_request_error", "request_too_large"), err
        return err["error"]
    assert err["error"]["type"] == "invalid_request_error" and err["error"]["message"], err
    return err["error"]


@pytest.mark.parametrize("path,body,names", BAD, ids=[f"{p.split('/')[-1]}-{i}" for i, (p, _b, _n) in enumerate(BAD)])
async def test_malformed_request_is_one_400_in_the_clients_shape(upstreams, write_pipeline, tmp_path, path, body, names):
    """Every malformed field is a 400 naming the field, in the client's protocol, with a JSON body;
    neither the upstream nor the fallback target receives anything."""
    p = write_pipeline(PIPE % (upstreams[0].url, upstreams[1].url))
    async with lynkr_app(p, tmp_path) as (_app, url):
        status, headers, raw = await post(url, path, body)
    assert status == 400, raw
    assert headers["content-type"].startswith("application/json")
    assert names in _client_shape(path, status, raw)["message"]
    assert upstreams[0].requests == [] and upstreams[1].requests == []


async def test_malformed_requests_never_open_the_breaker_for_others(upstreams, write_pipeline, tmp_path):
    """Twenty bad bodies from one client leave the provider's breaker closed (no recorded failure):
    the next good request from anyone is served by the primary, not the fallback."""
    p = write_pipeline(PIPE % (upstreams[0].url, upstreams[1].url))
    async with lynkr_app(p, tmp_path) as (_app, url):
        for _ in range(20):
            status, _h, _raw = await post(url, body={**BODY, "system": [3]})
            assert status == 400
        status, h, raw = await post(url)
        assert status == 200 and "x-lynkr-fallback" not in h, raw
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/health/providers") as r:
                health = await r.json()
    assert all(b["state"] == "closed" and b["recent_failures"] == 0 for b in health["breakers"].values()), health
    assert len(upstreams[0].requests) == 1 and upstreams[1].requests == []


async def test_adapter_failure_before_sending_is_not_the_upstreams_fault():
    """An adapter that raises while building the upstream body (a shape the validator let through
    but this upstream's conversion cannot take) is a 400 for the client, not retried, not sent to
    a fallback, and the breaker records nothing."""
    from lynkr.exchange import Exchange
    from lynkr.providers.resilience import Breakers, RetryPolicy, call_resilient

    class Adapter:
        name = "up"
        sent = 0

        async def send(self, x, model):
            self.sent += 1
            raise TypeError("'int' object is not subscriptable")

    breakers = Breakers()
    x = Exchange.new("anthropic", {"model": "m", "messages": []})
    adapter = Adapter()
    with pytest.raises(Exception) as e:
        await call_resilient(adapter, x, "m", retry=RetryPolicy.from_config({"attempts": 3}), breakers=breakers,
                             first_byte_s=None)
    err = e.value
    assert (err.status, err.fault, err.retryable, err.fallbackable) == (400, "client", False, False)
    assert adapter.sent == 1
    assert breakers.snapshot()["up:m"] == {"state": "closed", "recent_failures": 0, "opens": 0}


async def test_default_message_limit_applies_without_configuration(upstreams, write_pipeline, tmp_path):
    """The documented default of 10,000 messages holds when `server.max_messages` is not set."""
    p = write_pipeline(PIPE % (upstreams[0].url, upstreams[1].url))
    many = {**BODY, "messages": [USER, {"role": "assistant", "content": "ok"}] * 5000 + [USER]}
    async with lynkr_app(p, tmp_path) as (_app, url):
        status, _h, raw = await post(url, body=many)
        ok, _h, _raw = await post(url, body={**BODY, "messages": many["messages"][:9999]})
    assert status == 413 and b"10000" in raw, raw
    assert ok == 200


async def test_control_characters_never_reach_a_header_and_keep_alive_survives(upstreams, write_pipeline, tmp_path):
    """A model name with CR/LF or NUL is refused before anything echoes it, and the same keep-alive
    connection then serves a good request (no desynchronised framing)."""
    p = write_pipeline(PIPE % (upstreams[0].url, upstreams[1].url))
    async with lynkr_app(p, tmp_path) as (_app, url):
        conn = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=conn) as s:
            for model in ("a\r\nx-evil: 1", "a\x00b", "a\nb"):
                async with s.post(url + "/v1/messages", json={**BODY, "model": model}) as r:
                    assert r.status == 400
                    assert all("evil" not in k.lower() for k in r.headers)
                    await r.read()
            async with s.post(url + "/v1/messages", json=BODY) as r:
                assert r.status == 200, await r.text()


async def test_health_and_metrics_survive_requests_without_a_model(upstreams, write_pipeline, tmp_path):
    """A request without `model` is refused; /v1/health/providers and the breaker lines of /metrics
    keep working for everyone afterwards."""
    p = write_pipeline(PIPE % (upstreams[0].url, upstreams[1].url))
    async with lynkr_app(p, tmp_path) as (_app, url):
        assert (await post(url, body={"max_tokens": 5, "messages": [USER]}))[0] == 400
        assert (await post(url))[0] == 200
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/health/providers") as r:
                assert r.status == 200
            async with s.get(url + "/metrics") as r:
                assert r.status == 200 and "lynkr_breaker_state{" in await r.text()
