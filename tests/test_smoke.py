import aiohttp


PIPE = """
version: 1
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""


async def test_messages_roundtrip(anthropic_upstream, write_pipeline, lynkr):
    engine, url = await lynkr(write_pipeline(PIPE % anthropic_upstream.url))
    body = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=body) as r:
            assert r.status == 200
            data = await r.json()
            assert data["content"][0]["text"] == "Hello from upstream."
            assert r.headers["x-lynkr-provider"] == "up"
        async with s.post(url + "/v1/messages", json={**body, "stream": True}) as r:
            text = await r.text()
            assert "event: message_start" in text and "event: message_stop" in text
    assert anthropic_upstream.requests[0]["model"] == "claude-x"


def last_headers(upstream) -> dict:
    return {k.lower(): v for k, v in upstream.headers[-1].items()}


async def test_client_key_is_forwarded_only_to_a_keyless_anthropic_provider(anthropic_upstream, write_pipeline, lynkr):
    engine, url = await lynkr(write_pipeline(PIPE % anthropic_upstream.url))
    body = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=body, headers={"x-api-key": "sk-client"}) as r:
            assert r.status == 200
    assert last_headers(anthropic_upstream).get("x-api-key") == "sk-client"

    keyed = PIPE.replace('base_url: "%s"}', 'base_url: "%s", api_key: sk-proxy}')
    engine, url = await lynkr(write_pipeline(keyed % anthropic_upstream.url, "keyed.yaml"))
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=body, headers={"x-api-key": "sk-client"}) as r:
            assert r.status == 200
    assert last_headers(anthropic_upstream).get("x-api-key") == "sk-proxy"

    lynkr_keys = PIPE.replace("version: 1", "version: 1\nserver: {api_keys: [lk-1]}")
    engine, url = await lynkr(write_pipeline(lynkr_keys % anthropic_upstream.url, "lk.yaml"))
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=body, headers={"x-api-key": "lk-1"}) as r:
            assert r.status == 200
    assert "x-api-key" not in last_headers(anthropic_upstream)      # a Lynkr key never leaves
