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
