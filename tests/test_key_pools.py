"""Pools of upstream keys (`providers.X.api_key: [...]` / `api_keys:`): requests spread over the
keys, a key the upstream refuses sits out while the others serve, and the pool's state is shown
masked (its last 4 characters) in health, /metrics and telemetry."""
import contextlib

import aiohttp
import anthropic
import duckdb
import openai
import orjson
import pytest
from aiohttp import web

from tests.helpers.anthropic_upstream import AnthropicUpstream
from tests.helpers.reliability_util import BODY, lynkr_app, start_upstream

GOOD1, GOOD2, BAD = "pool-key-good-000000001", "pool-key-good-000000002", "pool-key-bad-0000000003"


class KeyedUpstream(AnthropicUpstream):
    """Anthropic Messages upstream that answers a 429 rate_limit_error (retry-after: 60) to the keys
    in `limited` and a 401 to those in `revoked`, as api.anthropic.com words them."""

    def __init__(self, limited=(), revoked=()):
        super().__init__()
        self.limited, self.revoked = set(limited), set(revoked)
        self.keys: list[str] = []

    async def messages(self, request):
        key = request.headers.get("x-api-key", "")
        self.keys.append(key)
        if key in self.limited:
            return web.Response(status=429, content_type="application/json", headers={"retry-after": "60"},
                                body=orjson.dumps({"type": "error", "error": {
                                    "type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}}))
        if key in self.revoked:
            return web.Response(status=401, content_type="application/json", body=orjson.dumps(
                {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}))
        return await super().messages(request)


@contextlib.asynccontextmanager
async def pooled_proxy(up, write_pipeline, tmp_path, keys_line: str):
    """The upstream `up` served, and an in-process Lynkr whose provider has the pool `keys_line`."""
    runner = await start_upstream(up)
    try:
        async with lynkr_app(write_pipeline(pool_pipeline(up.url, keys_line)), tmp_path) as (app, url):
            yield url
    finally:
        await runner.cleanup()


def pool_pipeline(url: str, keys_line: str) -> str:
    return f"""
version: 1
server: {{shed: {{enabled: false}}}}     # the SDKs share this test's event loop: their lag is not load
providers:
  up:
    kind: anthropic
    base_url: "{url}"
    {keys_line}
    retry: {{attempts: 1}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
"""


async def test_a_pool_of_three_keys_keeps_serving_when_one_is_rate_limited(write_pipeline, tmp_path):
    """One key of three answers 429: it is benched for its retry-after and every request, through the
    official Anthropic and OpenAI SDKs with their own retries off, is answered on the other two;
    health, /metrics and telemetry show which key served, by its last 4 characters only."""
    up = KeyedUpstream(limited={BAD})
    async with pooled_proxy(up, write_pipeline, tmp_path, f'api_key: ["{GOOD1}", "{BAD}", "{GOOD2}"]') as url:
        claude = anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0)
        oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        for _ in range(4):
            assert (await claude.messages.create(**BODY)).content[0].text == "Hello from upstream."
            async with claude.messages.stream(**BODY) as stream:
                assert (await stream.get_final_message()).content
            chat = await oa.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": "hi"}])
            assert chat.choices[0].message.content == "Hello from upstream."
            assert (await oa.responses.create(model="claude-x", input="hi")).output_text == "Hello from upstream."
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/v1/health/providers") as r:
                health = await r.json()
            async with s.get(url + "/metrics") as r:
                metrics = await r.text()
    assert up.keys.count(BAD) == 1, "a benched key is not tried again within its retry-after"
    good = [k for k in up.keys if k != BAD]
    assert len(good) == 16 and abs(good.count(GOOD1) - good.count(GOOD2)) <= 2, "the two left share the load"
    members = {m["key"]: m for m in health["providers"]["up"]["keys"]}
    assert members["…0003"]["state"] == "cooling" and 0 < members["…0003"]["back_in_s"] <= 60
    assert members["…0001"]["state"] == members["…0002"]["state"] == "ok"
    assert 'lynkr_upstream_key_available{provider="up",key="…0003"} 0' in metrics
    assert 'lynkr_upstream_key_available{provider="up",key="…0001"} 1' in metrics
    assert 'lynkr_upstream_key_attempts_total{provider="up",key="…0003"} 1' in metrics
    assert f'lynkr_upstream_key_attempts_total{{provider="up",key="…0001"}} {good.count(GOOD1)}' in metrics
    con = duckdb.connect(str(tmp_path / "telemetry.duckdb"), read_only=True)
    rows = con.execute("SELECT upstream_key, count(*), max(status) FROM requests GROUP BY 1 ORDER BY 1").fetchall()
    dump = str(con.execute("SELECT * FROM requests").fetchall())
    con.close()
    assert [(k, n, status) for k, n, status in rows] == [("…0001", good.count(GOOD1), 200), ("…0002", good.count(GOOD2), 200)]
    for secret in (GOOD1, GOOD2, BAD):
        assert secret not in str(health) and secret not in metrics and secret not in dump


async def test_a_revoked_key_is_disabled_and_a_pool_with_no_key_left_relays_the_upstream_error(write_pipeline, tmp_path):
    """A key answered 401 is disabled (not tried again for disable_s) while the others serve; when
    every key is refused the client gets the upstream's own error, not a 5xx."""
    # Keys' state is the process's (a reload keeps it): other keys than the test above's.
    bad, good = "pool-key-revoked-000000004", "pool-key-fine-00000000005"
    up = KeyedUpstream(revoked={bad})
    async with pooled_proxy(up, write_pipeline, tmp_path, f'api_keys: ["{bad}", "{good}"]') as url:
        claude = anthropic.AsyncAnthropic(base_url=url, api_key="unused", max_retries=0)
        for _ in range(3):
            assert (await claude.messages.create(**BODY)).content
        up.limited.add(good)
        with pytest.raises(anthropic.RateLimitError) as e:
            await claude.messages.create(**BODY)
        assert "rate limit" in e.value.message and e.value.response.headers["retry-after"] == "60"
        async with aiohttp.ClientSession() as s, s.get(url + "/v1/health/providers") as r:
            members = {m["key"]: m for m in (await r.json())["providers"]["up"]["keys"]}
    assert up.keys.count(bad) == 1
    assert members["…0004"]["state"] == "disabled" and members["…0004"]["reason"] == "401"
    assert members["…0005"]["state"] == "cooling"


def test_an_empty_pool_member_is_left_out_and_the_banner_counts_the_keys(write_pipeline):
    """An unset variable in a pool is no key; the first screen says how many keys the pool has, masked."""
    from lynkr.config.loader import load_config
    from lynkr.engine.pipeline import build_pipeline
    from lynkr.server.banner import key_status

    UNSET = "{{ env.UNSET_POOL_KEY | default('') }}"

    pipe = write_pipeline(pool_pipeline("http://127.0.0.1:9", f'api_key: ["{GOOD1}", "{UNSET}", "{GOOD2}"]'))
    cfg = load_config(pipe, environ={})
    p = build_pipeline(cfg, dry_run=True)
    assert [m.masked for m in p.providers["up"].pool.members] == ["…0001", "…0002"]
    assert key_status("up", cfg.data["providers"]["up"]) == "2 keys (a pool): …0001, …0002"
