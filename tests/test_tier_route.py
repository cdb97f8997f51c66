"""tier_route and the model catalogue: tier → provider:model, load-time errors that name the
problem, context-window fit, cost and baseline, per-tier fallbacks, and a request end to end."""
import aiohttp
import pytest

from lynkr.kit.catalog import load_catalog, normalize, price, context_window
from lynkr.config import load_config
from lynkr.engine.pipeline import build_pipeline
from lynkr.errors import ConfigError
from lynkr.exchange import Exchange
from tests.helpers.routing_requests import claude_code, user_request

TIERED = """
version: 1
providers:
  local: {kind: ollama, base_url: "http://127.0.0.1:9"}
  cloud: {kind: anthropic, base_url: "%(url)s"}
tiers:
  SIMPLE: local:qwen2.5-coder:7b
  MEDIUM: local:qwen2.5-coder:32b
  COMPLEX: cloud:claude-sonnet-4-5
  REASONING: cloud:claude-opus-4-5
%(extra)s
stages:
  - {id: score, uses: score}
  - id: route
    uses: tier_route
    needs: [score]
    with: %(with)s
  - {id: call, uses: provider_call, needs: [route]}
"""


def tiered(url="http://127.0.0.1:9", extra="", with_="{}"):
    return TIERED % {"url": url, "extra": extra, "with": with_}


async def dry_run(write_pipeline, text: str, body: dict) -> Exchange:
    pipeline = build_pipeline(load_config(write_pipeline(text)), dry_run=True)
    try:
        from lynkr.wire import anthropic
        x = Exchange.new("anthropic", anthropic.to_canonical(body))
        await pipeline.explain(x)
        return x
    finally:
        await pipeline.aclose()


@pytest.mark.parametrize("prompt,tier,target", [
    ("thanks!", "SIMPLE", "local:qwen2.5-coder:7b"),
    ("Add a docstring to parse_args in cli.py.", "MEDIUM", "local:qwen2.5-coder:32b"),
    ("Refactor the storage layer across the repository and update the tests.", "COMPLEX", "cloud:claude-sonnet-4-5"),
    ("Prove this lock-free queue is linearizable and analyze the trade-offs.", "REASONING", "cloud:claude-opus-4-5"),
])
async def test_each_tier_goes_to_its_target(write_pipeline, prompt, tier, target):
    x = await dry_run(write_pipeline, tiered(), user_request(prompt))
    assert x.vars["tier"] == tier
    assert str(x.route) == target and x.route.tier == tier
    assert x.vars["route"] == target


async def test_cost_and_baseline_are_published(write_pipeline):
    x = await dry_run(write_pipeline, tiered(), user_request("Refactor the storage layer across the repository.",
                                                             model="claude-opus-4-1-20250805"))
    assert x.route.model == "claude-sonnet-4-5"
    assert 0 < x.vars["cost_estimate"] < x.vars["baseline_cost_estimate"]
    # Same tokens, so the ratio is the price ratio of Sonnet 4.5 to Opus 4.1 ($3/$15 vs $15/$75).
    assert abs(x.vars["cost_estimate"] / x.vars["baseline_cost_estimate"] - 0.2) < 0.01
    detail = x.event("route").detail
    assert detail["baseline"]["model"] == "claude-opus-4-1-20250805" and detail["saving"] == "80%"


async def test_unknown_models_are_unpriced_not_wrong(write_pipeline):
    x = await dry_run(write_pipeline, tiered(), user_request("hi", model="my-private-model"))
    assert x.vars["baseline_cost_estimate"] is None and x.vars["cost_estimate"] == 0.0


async def test_request_too_big_for_the_tier_moves_up(write_pipeline):
    # The SIMPLE model's window is overridden to 2,000 tokens; the Claude Code body is ~15,000.
    extra = "models:\n  qwen2.5-coder:7b: {context_window: 2000}\n  qwen2.5-coder:32b: {context_window: 8000}"
    _h, body = claude_code(4)
    body = {**body, "model": "claude-haiku-4-5"}            # a background call: SIMPLE by rule
    x = await dry_run(write_pipeline, tiered(extra=extra), body)
    assert x.vars["tier"] == "SIMPLE"
    assert str(x.route) == "cloud:claude-sonnet-4-5" and x.route.reason == "context window"
    assert "moved up to COMPLEX" in x.event("route").detail["context"]


async def test_context_fit_can_be_switched_off(write_pipeline):
    extra = "models:\n  qwen2.5-coder:7b: {context_window: 2000}"
    _h, body = claude_code(4)
    x = await dry_run(write_pipeline, tiered(extra=extra, with_="{context_fit: false}"),
                      {**body, "model": "claude-haiku-4-5"})
    assert str(x.route) == "local:qwen2.5-coder:7b"


async def test_per_tier_fallbacks_are_published(write_pipeline):
    x = await dry_run(write_pipeline, tiered(with_="{fallbacks: {SIMPLE: ['cloud:claude-haiku-4-5']}}"),
                      user_request("thanks!"))
    assert x.vars["route_fallbacks"] == ["cloud:claude-haiku-4-5"]


async def test_without_tiers_a_single_default_serves(write_pipeline):
    text = """
version: 1
providers:
  cloud: {kind: anthropic, base_url: "http://127.0.0.1:9"}
stages:
  - {id: score, uses: score}
  - {id: route, uses: tier_route, needs: [score], with: {default: "cloud:claude-sonnet-4-5"}}
  - {id: call, uses: provider_call, needs: [route]}
"""
    x = await dry_run(write_pipeline, text, user_request("Prove the queue is linearizable."))
    assert str(x.route) == "cloud:claude-sonnet-4-5" and x.vars["tier"] == "REASONING"


async def test_without_tiers_or_default_provider_call_decides(write_pipeline):
    text = """
version: 1
providers:
  cloud: {kind: anthropic, base_url: "http://127.0.0.1:9"}
stages:
  - {id: route, uses: tier_route}
  - {id: call, uses: provider_call, needs: [route], with: {to: "cloud:*"}}
"""
    x = await dry_run(write_pipeline, text, user_request("hi", model="claude-sonnet-4-5"))
    assert str(x.route) == "cloud:*"
    assert x.vars["cost_estimate"] == x.vars["baseline_cost_estimate"] > 0


async def test_missing_score_routes_medium_and_says_so(write_pipeline):
    text = tiered().replace("  - {id: score, uses: score}\n", "").replace("needs: [score]", "needs: []")
    x = await dry_run(write_pipeline, text, user_request("hi"))
    assert x.route.tier == "MEDIUM" and "no score stage" in x.event("route").detail["note"]


# -- load-time errors ------------------------------------------------------------------------------

def test_missing_tier_is_named(write_pipeline):
    text = tiered().replace("  REASONING: cloud:claude-opus-4-5\n", "")
    with pytest.raises(ConfigError) as e:
        load_config(write_pipeline(text))
    assert "missing REASONING" in str(e.value) and "tiers" in str(e.value)


def test_unknown_provider_in_a_tier_is_named(write_pipeline):
    text = tiered().replace("COMPLEX: cloud:", "COMPLEX: clod:")
    with pytest.raises(ConfigError) as e:
        load_config(write_pipeline(text))
    msg = str(e.value)
    assert "unknown provider 'clod'" in msg and "tiers.COMPLEX" in msg and "cloud" in msg


def test_malformed_tier_target_is_named(write_pipeline):
    text = tiered().replace("MEDIUM: local:qwen2.5-coder:32b", "MEDIUM: qwen-without-provider")
    with pytest.raises(ConfigError) as e:
        load_config(write_pipeline(text))
    assert "'qwen-without-provider' is not 'provider:model'" in str(e.value)


def test_bad_fallback_target_is_named(write_pipeline):
    with pytest.raises(ConfigError) as e:
        build_pipeline(load_config(write_pipeline(tiered(with_="{fallbacks: {COMPLEX: ['nope:m']}}"))), dry_run=True)
    assert "unknown provider 'nope'" in str(e.value) and "fallbacks" in str(e.value)


# -- the catalogue ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,key", [
    ("openrouter:anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
    ("ollama:qwen2.5-coder:7b", "qwen2-5-coder"),
    ("gpt-oss:20b", "gpt-oss"),
    ("models/gemini-2.5-pro", "gemini-2-5-pro"),
])
def test_names_normalise(name, key):
    assert normalize(name) == key


def test_catalogue_api():
    p = price("gpt-4o-mini")
    assert p["input"] == 0.15 and p["output"] == 0.6 and p["cache_read"] == 0.075
    assert context_window("qwen2.5-coder:7b") == 32768
    assert price("gpt-4o-2024-08-06")["model"] == "gpt-4o"           # dated name → listed model
    assert price("claude-opus-5-5")["match"] == "family"             # newer than the table
    assert price("no-such-model") is None and context_window(None) is None


def test_pipeline_models_override_the_catalogue():
    cat = load_catalog({"claude-sonnet-4-5": {"input": 2.5}, "house-model": {"input": 1, "output": 2,
                                                                            "context_window": 8192}})
    p = cat.price("anthropic/claude-sonnet-4.5")
    assert p["input"] == 2.5 and p["output"] == 15.0                 # one field changed, the rest kept
    assert cat.context_window("house-model") == 8192
    assert cat.cost("house-model", input_tokens=1_000_000, output_tokens=500_000) == pytest.approx(2.0)


# -- end to end -------------------------------------------------------------------------------------

async def test_tier_picks_the_upstream_model_end_to_end(anthropic_upstream, write_pipeline, lynkr):
    text = tiered(url=anthropic_upstream.url).replace("local:qwen2.5-coder:7b", "cloud:claude-haiku-4-5") \
                                              .replace("local:qwen2.5-coder:32b", "cloud:claude-sonnet-4-5")
    engine, url = await lynkr(write_pipeline(text))
    async with aiohttp.ClientSession() as s:
        for prompt, model, tier in [("thanks!", "claude-haiku-4-5", "SIMPLE"),
                                    ("Prove the lock-free queue is linearizable.", "claude-opus-4-5", "REASONING")]:
            body = user_request(prompt, model="claude-opus-4-1")
            async with s.post(url + "/v1/messages", json=body) as r:
                assert r.status == 200
                assert r.headers["x-lynkr-tier"] == tier and r.headers["x-lynkr-model"] == model
            assert anthropic_upstream.requests[-1]["model"] == model


async def test_per_tier_fallback_is_tried_when_the_tier_fails(anthropic_upstream, write_pipeline, lynkr):
    from tests.conftest import free_port
    text = f"""
version: 1
providers:
  down: {{kind: anthropic, base_url: "http://127.0.0.1:{free_port()}", retry: {{attempts: 1}}}}
  cloud: {{kind: anthropic, base_url: "{anthropic_upstream.url}"}}
tiers:
  SIMPLE: down:claude-haiku-4-5
  MEDIUM: cloud:claude-sonnet-4-5
  COMPLEX: cloud:claude-sonnet-4-5
  REASONING: cloud:claude-opus-4-5
stages:
  - {{id: score, uses: score}}
  - {{id: route, uses: tier_route, needs: [score], with: {{fallbacks: {{SIMPLE: ["cloud:claude-haiku-4-5"]}}}}}}
  - {{id: call, uses: provider_call, needs: [route], on_error: backup}}
  - {{id: backup, uses: fallback, with: {{to: ""}}}}
"""
    engine, url = await lynkr(write_pipeline(text))
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=user_request("thanks!")) as r:
            assert r.status == 200
            assert r.headers["x-lynkr-fallback"] == "cloud:claude-haiku-4-5"
    assert anthropic_upstream.requests[-1]["model"] == "claude-haiku-4-5"


async def test_explain_shows_the_breakdown_and_the_route(write_pipeline):
    from lynkr.cli.explain import explain, format_report
    from tests.helpers.routing_requests import SESSION
    report = await explain(str(write_pipeline(tiered())), str(SESSION / "req_004.json"))
    text = format_report(report)
    assert "score (score): " in text and "→ MEDIUM" in text
    assert "  action " in text and "edit: make" in text          # one line per dimension, with evidence
    assert "route: local:qwen2.5-coder:32b  (tier MEDIUM)  est. $0.0000 vs $" in text
    assert "for claude-opus-5-5" in text
