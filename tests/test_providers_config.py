"""Load-time checks (a provider missing its key/URL names the variable; unknown providers get
"did you mean"), Lynkr's environment variables through pipelines/default.yaml, and the pure parts
of the resilience layer and per-target conversions."""
from __future__ import annotations

import pytest

from lynkr.engine.pipeline import load_pipeline
from lynkr.errors import ConfigError, ProxyError
from lynkr.providers.resilience import Breaker, Breakers, RetryPolicy, classify_status, upstream_error
from tests.conftest import ROOT

DEFAULT = ROOT / "pipelines" / "default.yaml"


def _targets(p):
    call = p.stages["call"]
    backup = p.stages.get("backup")
    return str(call.default), [str(t) for t in backup.targets] if backup else []


def test_default_pipeline_loads_with_no_environment():
    p = load_pipeline(DEFAULT, environ={}, dry_run=True)
    assert _targets(p) == ("anthropic:*", [])


@pytest.mark.parametrize("env,call,backup", [
    ({"MODEL_PROVIDER": "ollama", "OLLAMA_MODEL": "qwen3-coder:30b"}, "ollama:qwen3-coder:30b", []),
    ({"MODEL_PROVIDER": "openrouter", "OPENROUTER_API_KEY": "k" * 20, "OPENROUTER_MODEL": "anthropic/claude-sonnet-4.5"},
     "openrouter:anthropic/claude-sonnet-4.5", []),
    ({"MODEL_PROVIDER": "ollama", "FALLBACK_PROVIDER": "openrouter", "OPENROUTER_API_KEY": "k" * 20},
     "ollama:qwen2.5-coder:7b", ["openrouter:openai/gpt-4o-mini"]),
    ({"MODEL_PROVIDER": "ollama", "FALLBACK_PROVIDER": "openrouter", "FALLBACK_ENABLED": "false"},
     "ollama:qwen2.5-coder:7b", []),
    ({"MODEL_PROVIDER": "bedrock", "AWS_BEDROCK_API_KEY": "k" * 20, "AWS_BEDROCK_MODEL_ID": "anthropic.claude-3-5-haiku-20241022-v1:0"},
     "bedrock:anthropic.claude-3-5-haiku-20241022-v1:0", []),
    ({"MODEL_PROVIDER": "z-ai", "ZAI_API_KEY": "k" * 20}, "zai:GLM-4.7", []),
    ({"MODEL_PROVIDER": "azure-openai", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY": "k" * 20,
      "AZURE_OPENAI_DEPLOYMENT": "gpt-4.1"}, "azure-openai:gpt-4.1", []),
    ({"MODEL_PROVIDER": "databricks", "DATABRICKS_API_BASE": "https://x.cloud.databricks.com", "DATABRICKS_API_KEY": "dapi" + "k" * 20},
     "databricks:databricks-claude-sonnet-4-5", []),
    ({"MODEL_PROVIDER": "llamacpp"}, "llamacpp:default", []),
])
def test_lynkr_env_vars_drive_default_pipeline(env, call, backup):
    p = load_pipeline(DEFAULT, environ=env, dry_run=True)
    assert _targets(p) == (call, backup)


def test_lynkr_tiers_from_env():
    env = {"MODEL_PROVIDER": "ollama", "TIER_SIMPLE": "ollama:qwen2.5-coder:7b", "TIER_MEDIUM": "qwen2.5-coder:32b",
           "TIER_COMPLEX": "openrouter:anthropic/claude-sonnet-4.5", "TIER_REASONING": "openrouter:anthropic/claude-opus-4",
           "OPENROUTER_API_KEY": "k" * 20}
    p = load_pipeline(DEFAULT, environ=env, dry_run=True)
    assert p.config["tiers"] == {"SIMPLE": "ollama:qwen2.5-coder:7b", "MEDIUM": "ollama:qwen2.5-coder:32b",
                                 "COMPLEX": "openrouter:anthropic/claude-sonnet-4.5",
                                 "REASONING": "openrouter:anthropic/claude-opus-4"}


@pytest.mark.parametrize("env,provider,var", [
    ({"MODEL_PROVIDER": "openrouter"}, "openrouter", "OPENROUTER_API_KEY"),
    ({"MODEL_PROVIDER": "ollama", "FALLBACK_PROVIDER": "bedrock"}, "bedrock", "AWS_BEDROCK_API_KEY"),
    ({"MODEL_PROVIDER": "azure-openai"}, "azure-openai", "AZURE_OPENAI_ENDPOINT"),
    ({"MODEL_PROVIDER": "databricks"}, "databricks", "DATABRICKS_API_BASE"),
    ({"MODEL_PROVIDER": "vertex"}, "vertex", "VERTEX_API_KEY"),
    ({"MODEL_PROVIDER": "moonshot"}, "moonshot", "MOONSHOT_API_KEY"),
])
def test_used_provider_without_key_is_a_load_error_naming_the_variable(env, provider, var):
    with pytest.raises(ConfigError) as e:
        load_pipeline(DEFAULT, environ=env, dry_run=True)
    msg = str(e.value)
    assert f"provider '{provider}'" in msg and var in msg and "default.yaml:" in msg


def test_unknown_tier_provider_did_you_mean():
    env = {"TIER_SIMPLE": "olama:qwen", "TIER_MEDIUM": "ollama:a", "TIER_COMPLEX": "ollama:b", "TIER_REASONING": "ollama:c"}
    with pytest.raises(ConfigError) as e:
        load_pipeline(DEFAULT, environ=env, dry_run=True)
    assert "tiers.SIMPLE" in str(e.value) and "did you mean 'ollama'" in str(e.value)


def test_fallback_target_unknown_provider(write_pipeline):
    p = write_pipeline("version: 1\nproviders:\n  ollama: {kind: ollama, base_url: 'http://127.0.0.1:1'}\nstages:\n"
                       "  - {id: call, uses: provider_call, with: {to: 'ollama:m'}, on_error: b}\n"
                       "  - {id: b, uses: fallback, with: {to: ['ollama:x', 'olama:y']}}\n")
    with pytest.raises(ConfigError) as e:
        load_pipeline(p, dry_run=True)
    assert "stages[1].with.to[1]" in str(e.value) and "did you mean 'ollama'" in str(e.value)


def test_lynkr_env_example_loads():
    from dotenv import dotenv_values

    env = {k: v for k, v in dotenv_values(ROOT / "examples" / "lynkr-env" / ".env.example").items() if v is not None}
    p = load_pipeline(DEFAULT, environ=env, dry_run=True)
    assert _targets(p)[0].startswith("ollama:")
    assert p.config["tiers"]["COMPLEX"].startswith("openrouter:")


# ---- resilience, pure ---------------------------------------------------------------------------

def test_taxonomy():
    assert classify_status(429) == (True, True)
    assert classify_status(529) == (True, True)
    assert classify_status(404) == (False, True)
    assert classify_status(400) == (False, False)
    assert classify_status(401) == (False, False)
    assert classify_status(400, "prompt is too long: 210000 tokens > 200000 maximum") == (False, False)
    assert classify_status(400, 'registry.ollama.ai/library/gemma:2b does not support tools') == (False, True)
    e = upstream_error("p", 413, "Input is too long.")
    assert e.status == 400 and e.type == "invalid_request_error" and not e.fallbackable
    assert upstream_error("p", 422, "bad").status == 400
    assert upstream_error("p", 418, "teapot").status == 400
    assert upstream_error("p", 599, "odd").status == 502


def test_retry_policy_honours_retry_after_and_caps():
    r = RetryPolicy(attempts=3, base_s=1, max_s=4, max_retry_after_s=10)
    assert r.delay(1, ProxyError(429, "x", retry_after=2.5)) == 2.5
    assert r.delay(1, ProxyError(429, "x", retry_after=60)) is None     # relayed to the client instead
    assert r.delay(3, ProxyError(500, "x")) is None                    # out of attempts
    assert r.delay(1, ProxyError(400, "x")) is None                    # not retryable
    for attempt in (1, 2):
        d = r.delay(attempt, ProxyError(503, "x"))
        assert 0 <= d <= min(4, 2 ** (attempt - 1))


def test_breaker_settings_follow_a_reload_and_its_state_stays():
    breakers = Breakers()
    breakers.settings["up"] = {"threshold": 2, "cooldown_s": 7}
    b = breakers.get("up", "m")
    assert (b.threshold, b.window_s, b.cooldown_s) == (2, 60.0, 7.0)
    b.failure(now=0)
    b.failure(now=1)
    assert b.state == "open"
    breakers.settings["up"] = {"threshold": 4}           # the reloaded pipeline's settings
    assert breakers.get("up", "m") is b and (b.threshold, b.cooldown_s) == (4, 30.0) and b.state == "open"
    del breakers.settings["up"]                           # none at all: the defaults
    assert breakers.get("up", "m").threshold == 5
    assert breakers.get("up", "other") is not b
    assert list(breakers.snapshot()) == ["up:m", "up:other"]


def test_breaker_state_machine():
    b = Breaker(threshold=3, window_s=10, cooldown_s=5)
    b.failure(now=0)
    b.failure(now=1)
    b.failure(now=20)              # the first two fell out of the window
    assert b.state == "closed" and b.allow(now=20)
    b.failure(now=21)
    b.failure(now=22)
    assert b.state == "open" and not b.allow(now=23)
    assert b.allow(now=27.5) and b.state == "half_open"    # one probe…
    assert not b.allow(now=27.6)                            # …only one
    b.failure(now=28)
    assert b.state == "open" and not b.allow(now=30)
    assert b.allow(now=33.5)
    b.success()
    assert b.state == "closed" and b.allow(now=34)


# ---- per-target conversions, pure -----------------------------------------------------------------

def test_tool_names_reversible():
    from lynkr.providers.prepare import ToolNames
    n = ToolNames()
    long = "mcp__" + "x" * 80
    out = n.out(long)
    assert len(out) <= 64 and n.back_to(out) == long
    assert n.out("Bash") == "Bash" and n.out("a.b") != "a.b" and n.back_to(n.out("a.b")) == "a.b"
    assert ToolNames().out(long) == out                      # deterministic across turns


def test_gemini_schema_pruned():
    from lynkr.providers.gemini import gemini_schema
    s = gemini_schema({"$schema": "x", "type": "object", "additionalProperties": False,
                       "properties": {"a": {"type": ["string", "null"], "format": "uri", "default": "q"},
                                      "additionalProperties": {"type": "integer"}},
                       "required": ["a", "zzz"]})
    assert s == {"type": "object", "properties": {"a": {"type": "string", "nullable": True},
                                                  "additionalProperties": {"type": "integer"}}, "required": ["a"]}


def test_converse_conversion_rules():
    from lynkr.providers.bedrock import to_converse
    body, names = to_converse({
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cch=1;"}, {"type": "text", "text": "Be brief."}],
        "max_tokens": 100000,
        "tool_choice": {"type": "none"},
        "messages": [
            {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
            {"role": "user", "content": [{"type": "text", "text": ""}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""},
                                              {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": []}]}]},
        model_limit=8192)
    assert body["system"] == [{"text": "Be brief."}]
    assert body["inferenceConfig"]["maxTokens"] == 8192
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [{"text": "hi"}, {"toolUse": {"toolUseId": "t1", "name": "Bash", "input": {}}}]
    assert body["messages"][2]["content"][0]["toolResult"] == {"toolUseId": "t1", "content": [{"text": "error"}], "status": "error"}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "Bash"      # stub for history
    assert "toolChoice" not in body["toolConfig"]


def test_ollama_conversion_rules():
    from lynkr.providers.ollama import to_ollama
    body = to_ollama({"max_tokens": 500, "stop_sequences": ["END"], "messages": [
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"},
                                          {"type": "tool_use", "id": "c1", "name": "Read", "input": {"p": "/a"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": [{"type": "text", "text": "data"}]},
                                     {"type": "text", "text": "<system-reminder>x</system-reminder>"}]}],
        "tools": [{"name": "Read", "input_schema": {"type": "object", "additionalProperties": False, "properties": {"p": {"type": "string"}}}}]},
        "m:7b", num_ctx=32768)
    assert body["options"] == {"num_ctx": 32768, "num_predict": 500, "stop": ["END"]}
    assert body["messages"][0] == {"role": "user", "content": "look", "images": ["iVBOR"]}
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"p": "/a"}
    assert body["messages"][2] == {"role": "tool", "content": "data", "tool_name": "Read", "tool_call_id": "c1"}
    assert body["messages"][3]["content"].startswith("<system-reminder>")
    assert "additionalProperties" not in body["tools"][0]["function"]["parameters"]


def test_anthropic_drops_foreign_thinking_only():
    from lynkr.providers.anthropic import AnthropicProvider
    p = AnthropicProvider("a", {"kind": "anthropic", "base_url": "https://api.anthropic.com"})
    real = {"type": "thinking", "thinking": "x", "signature": "EqQBreal"}
    req = {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]},
                        {"role": "assistant", "content": [real, {"type": "thinking", "thinking": "", "signature": "gemini:abc"},
                                                          {"type": "thinking", "thinking": "local", "signature": ""},
                                                          {"type": "text", "text": "a"}]}],
           "system": [{"type": "text", "text": "x-anthropic-billing-header: cch=1;"}]}
    body = p.build(req, "claude-x")
    assert body["messages"][1]["content"] == [real, {"type": "text", "text": "a"}]
    assert body["system"] == req["system"]          # Anthropic itself keeps the billing block
    zai = AnthropicProvider("z", {"kind": "anthropic", "base_url": "https://api.z.ai/api/anthropic/v1/messages", "api_key": "k"})
    assert zai.build(req, "glm")["system"] == [] and zai.base_url == "https://api.z.ai/api/anthropic"


def test_thinking_sent_only_where_the_model_takes_it():
    """Claude Code asks for thinking on every request; models without it answer 400."""
    from lynkr.providers.bedrock import to_converse
    from lynkr.providers.gemini import to_gemini
    from lynkr.providers.ollama import to_ollama
    req = {"max_tokens": 32000, "thinking": {"type": "enabled", "budget_tokens": 31999},
           "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]}
    assert "think" not in to_ollama(req, "qwen2.5-coder:7b", num_ctx=4096)
    assert to_ollama(req, "qwen3:8b", num_ctx=4096, think=True)["think"] is True
    assert "generationConfig" not in to_gemini({**req, "max_tokens": None})[0]
    assert to_gemini(req, thinking=True)[0]["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 24576
    assert "additionalModelRequestFields" not in to_converse(req, claude=False)[0]
    assert to_converse(req)[0]["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 31999


def test_azure_old_api_version_gets_no_stream_options():
    from lynkr.providers.openai import AzureOpenAIProvider
    req = {"stream": True, "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]}
    old = AzureOpenAIProvider("a", {"kind": "azure_openai", "base_url": "https://r.openai.azure.com", "api_key": "k",
                                    "api_version": "2024-08-01-preview"})
    new = AzureOpenAIProvider("a", {"kind": "azure_openai", "base_url": "https://r.openai.azure.com", "api_key": "k"})
    assert "stream_options" not in old.build(req, "gpt-4o")
    assert new.build(req, "gpt-4o")["stream_options"] == {"include_usage": True}
    assert new.url("gpt-4o") == "https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions"


def test_half_open_probe_released_when_client_leaves():
    b = Breaker(threshold=1, cooldown_s=1)
    b.failure(now=0)
    assert b.allow(now=2) and not b.allow(now=2)
    b.release()                      # the probing client hung up: no verdict
    assert b.allow(now=2)


def test_context_errors_speak_claude_codes_words():
    e = upstream_error("o", 400, "This model's maximum context length is 128000 tokens. However, you requested 150000 tokens.")
    assert e.status == 400 and e.message.startswith("prompt is too long: This model's maximum context length")
    assert upstream_error("b", 400, "Input is too long.").message == "Input is too long."
    assert upstream_error("a", 400, "prompt is too long: 210000 tokens > 200000 maximum").message.startswith("prompt is too long: 210000")
    m = upstream_error("b", 424, "Model error")
    assert m.status == 502 and m.retryable
