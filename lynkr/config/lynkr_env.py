"""A Node.js Lynkr `.env`, read as pipeline values: `{{ lynkr.NAME }}` in a pipeline's templates.

`pipelines/default.yaml` takes its providers, routes, tiers and stage switches from here, so the
file a user edits shows the workflow while an existing Lynkr `.env` keeps working unchanged.
Every variable this module reads, and every Node.js variable it knows but ignores, is in the one
table of docs/lynkr-env.md (a test keeps the two in step).

A variable with no meaning here is never silently dropped: `ignored()` names it and `lynkr run`
prints one warning line; a name in `.env` that is no variable at all gets a "did you mean".
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Mapping

from lynkr.errors import did_you_mean

__all__ = ["LynkrEnv", "LynkrEnvError", "MAPPED", "IGNORED", "SWITCHES", "read_lynkr_env", "ignored",
           "unknown_in_dotenv", "hot_reload"]

_OFF = ("false", "0", "no", "off")

# provider name -> (kind, fixed options, {option: (variables, first wins; default)})
PROVIDERS: dict[str, tuple[str, dict, dict]] = {
    "anthropic": ("anthropic", {}, {"base_url": (("ANTHROPIC_UPSTREAM_URL",), "https://api.anthropic.com"),
                                    "api_key": (("ANTHROPIC_API_KEY",), "")}),
    "ollama": ("ollama", {}, {"base_url": (("OLLAMA_ENDPOINT", "OLLAMA_API_BASE"), "http://localhost:11434"),
                              "keep_alive": (("OLLAMA_KEEP_ALIVE",), "")}),
    "openrouter": ("openai", {"flavor": "openrouter"}, {"base_url": (("OPENROUTER_ENDPOINT",), "https://openrouter.ai/api/v1"),
                                  "api_key": (("OPENROUTER_API_KEY",), "")}),
    "openai": ("openai", {}, {"base_url": (("OPENAI_ENDPOINT",), "https://api.openai.com/v1"),
                              "api_key": (("OPENAI_API_KEY",), ""), "organization": (("OPENAI_ORGANIZATION",), "")}),
    "azure-openai": ("azure_openai", {}, {"base_url": (("AZURE_OPENAI_ENDPOINT",), ""),
                                          "api_key": (("AZURE_OPENAI_API_KEY",), ""),
                                          "deployment": (("AZURE_OPENAI_DEPLOYMENT",), "gpt-4o"),
                                          "api_version": (("AZURE_OPENAI_API_VERSION",), "2024-08-01-preview")}),
    "azure-anthropic": ("anthropic", {}, {"base_url": (("AZURE_ANTHROPIC_ENDPOINT",), ""),
                                          "api_key": (("AZURE_ANTHROPIC_API_KEY",), ""),
                                          "version": (("AZURE_ANTHROPIC_VERSION",), "2023-06-01")}),
    "databricks": ("openai", {"flavor": "databricks"}, {
        "base_url": (("DATABRICKS_API_BASE",), ""), "api_key": (("DATABRICKS_API_KEY",), ""),
        "path": (("DATABRICKS_ENDPOINT_PATH",), "/serving-endpoints/{model}/invocations")}),
    "bedrock": ("bedrock", {}, {"base_url": (("AWS_BEDROCK_ENDPOINT",), ""),
                                "region": (("AWS_BEDROCK_REGION", "AWS_REGION"), "us-east-1"),
                                "api_key": (("AWS_BEDROCK_API_KEY", "AWS_BEARER_TOKEN_BEDROCK"), ""),
                                "access_key_id": (("AWS_ACCESS_KEY_ID",), ""),
                                "secret_access_key": (("AWS_SECRET_ACCESS_KEY",), ""),
                                "session_token": (("AWS_SESSION_TOKEN",), "")}),
    "vertex": ("gemini", {}, {"api_key": (("VERTEX_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"), "")}),
    "zai": ("anthropic", {"auth": "bearer"}, {"base_url": (("ZAI_ENDPOINT",), "https://api.z.ai/api/anthropic"),
                                              "api_key": (("ZAI_API_KEY",), "")}),
    "moonshot": ("openai", {}, {"base_url": (("MOONSHOT_ENDPOINT",), "https://api.moonshot.ai/v1"),
                                "api_key": (("MOONSHOT_API_KEY",), "")}),
    "deepseek": ("openai", {}, {"base_url": (("DEEPSEEK_ENDPOINT",), "https://api.deepseek.com/v1"),
                                "api_key": (("DEEPSEEK_API_KEY",), "")}),
    "llamacpp": ("openai", {"flavor": "llamacpp"}, {"base_url": (("LLAMACPP_ENDPOINT",), "http://localhost:8080"),
                                                    "api_key": (("LLAMACPP_API_KEY",), "")}),
    "lmstudio": ("openai", {"flavor": "lmstudio"}, {"base_url": (("LMSTUDIO_ENDPOINT",), "http://localhost:1234"),
                                                    "api_key": (("LMSTUDIO_API_KEY",), "")}),
}

# The model a provider serves when a route names only the provider (MODEL_PROVIDER, FALLBACK_PROVIDER).
MODELS: dict[str, tuple[str | None, str]] = {
    "anthropic": (None, "*"), "ollama": ("OLLAMA_MODEL", "qwen2.5-coder:7b"),
    "openrouter": ("OPENROUTER_MODEL", "openai/gpt-4o-mini"), "openai": ("OPENAI_MODEL", "gpt-4o"),
    "azure-openai": ("AZURE_OPENAI_DEPLOYMENT", "gpt-4o"), "azure-anthropic": ("AZURE_ANTHROPIC_MODEL", "*"),
    "databricks": ("DATABRICKS_MODEL", "databricks-claude-sonnet-4-5"),
    "bedrock": ("AWS_BEDROCK_MODEL_ID", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    "vertex": ("VERTEX_MODEL", "gemini-2.0-flash"), "zai": ("ZAI_MODEL", "GLM-4.7"),
    "moonshot": ("MOONSHOT_MODEL", "kimi-k2-turbo-preview"), "deepseek": ("DEEPSEEK_MODEL", "deepseek-chat"),
    "llamacpp": ("LLAMACPP_MODEL", "default"), "lmstudio": ("LMSTUDIO_MODEL", "local-model"),
}

# Read timeouts in milliseconds (the Node.js unit), per provider.
TIMEOUTS = {"ollama": ("OLLAMA_TIMEOUT_MS", 120000), "llamacpp": ("LLAMACPP_TIMEOUT_MS", None),
            "lmstudio": ("LMSTUDIO_TIMEOUT_MS", None)}

# Stage switches: `enabled: "{{ lynkr.on.STAGE }}"`; any of the variables set to false turns the stage off.
SWITCHES: dict[str, tuple[str, ...]] = {
    "exact_cache": ("PROMPT_CACHE_ENABLED", "LYNKR_CACHE"),
    "semantic_cache": ("SEMANTIC_CACHE_ENABLED", "LYNKR_CACHE"),
    "toon": ("TOON_ENABLED",),
}

# Everything else this module reads (the provider and model variables above are added below).
_OTHER = {"MODEL_PROVIDER", "MODEL_DEFAULT", "FALLBACK_ENABLED", "FALLBACK_PROVIDER", "FALLBACK_MODEL",
          "TIER_SIMPLE", "TIER_MEDIUM", "TIER_COMPLEX", "TIER_REASONING", "PORT", "HOST", "LYNKR_HOST",
          "OLLAMA_NUM_CTX", "PROMPT_CACHE_TTL_MS", "PROMPT_CACHE_MAX_ENTRIES", "REQUEST_JSON_LIMIT",
          "MODEL_PRICE_OVERRIDES", "LOAD_SHEDDING_ACTIVE_REQUESTS_THRESHOLD", "EMBEDDINGS_PROVIDER",
          "LYNKR_TELEMETRY", "LYNKR_STATE_DIR", "HOT_RELOAD_ENABLED", "LOG_LEVEL",
          "MEMORY_ENABLED", "MEMORY_RETRIEVAL_LIMIT", "MEMORY_SURPRISE_THRESHOLD", "MEMORY_TTL"}
MAPPED: frozenset[str] = frozenset(
    _OTHER
    | {v for _k, _f, opts in PROVIDERS.values() for names, _d in opts.values() for v in names}
    | {v for v, _d in MODELS.values() if v} | {v for v, _d in TIMEOUTS.values()}
    | {v for names in SWITCHES.values() for v in names})

# Node.js Lynkr variables that have no meaning here (its agent loop, memory, sandbox, sidecars, …).
IGNORED: frozenset[str] = frozenset("""
PREFER_OLLAMA OLLAMA_EMBEDDINGS_MODEL OLLAMA_EMBEDDINGS_ENDPOINT OPENROUTER_EMBEDDINGS_MODEL
OPENROUTER_MAX_TOOLS_FOR_ROUTING LLAMACPP_EMBEDDINGS_ENDPOINT EDENAI_API_KEY EDENAI_MODEL
EDENAI_ENDPOINT ATLASCLOUD_API_KEY ATLASCLOUD_MODEL ATLASCLOUD_ENDPOINT BAIDU_API_KEY BAIDU_ENDPOINT BAIDU_MODEL
NODE_ENV SESSION_DB_PATH WORKSPACE_ROOT TOOL_EXECUTION_MODE SUGGESTION_MODE_MODEL RATE_LIMIT_ENABLED
RATE_LIMIT_WINDOW_MS RATE_LIMIT_MAX RATE_LIMIT_KEY_BY TASK_DECOMPOSITION_ENABLED
TOKEN_TRACKING_ENABLED TOOL_TRUNCATION_ENABLED SYSTEM_PROMPT_MODE TOOL_DESCRIPTIONS HISTORY_COMPRESSION_ENABLED
HISTORY_KEEP_RECENT_TURNS HISTORY_SUMMARIZE_OLDER TOKEN_BUDGET_WARNING TOKEN_BUDGET_MAX TOKEN_BUDGET_ENFORCEMENT
SMART_TOOL_SELECTION_MODE SMART_TOOL_SELECTION_TOKEN_BUDGET HOT_RELOAD_DEBOUNCE_MS TOON_MIN_BYTES TOON_FAIL_OPEN
TOON_LOG_STATS CAVEMAN_ENABLED CAVEMAN_LEVEL OPENCLAW_MODE LYNKR_VISIBLE_ROUTING LYNKR_PREFLIGHT_ENABLED
LYNKR_PREFLIGHT_TIMEOUT_MS LYNKR_STICKY_SESSIONS LYNKR_SESSION_FINGERPRINT LYNKR_PIN_DRIFT_MARGIN
LYNKR_SWITCH_MAX_PROMPT_TOKENS LYNKR_COST_OPTIMIZE LYNKR_CASCADE_ENABLED LYNKR_CASCADE_VERIFY
LYNKR_STREAM_TRANSFORM LYNKR_STREAM_TRANSFORM_PROVIDERS LYNKR_STREAM_IDLE_TIMEOUT_MS LYNKR_NATIVE_PASSTHROUGH
LYNKR_OLLAMA_BUFFER_RESPONSES LYNKR_MAX_SESSION_TURNS LYNKR_MAX_TOOL_TURNS LYNKR_INTENT_WINDOW_N
LYNKR_INTENT_SCORE_MODE LYNKR_INTENT_DECAY AGENTIC_DISABLE_FLOOR LOAD_SHEDDING_MEMORY_THRESHOLD
LOAD_SHEDDING_HEAP_THRESHOLD POLICY_TOOL_LOOP_THRESHOLD
""".split())
# Whole families of Node.js variables with no meaning here.
IGNORED_PREFIXES = ("MEMORY_", "HEADROOM_", "MCP_", "POLICY_", "AGENTS_", "TINYFISH_", "WEB_SEARCH_",
                    "WEB_FETCH_", "LOG_FILE_", "CODEX_", "WORKSPACE_TEST_")


class LynkrEnvError(ValueError):
    """A Lynkr variable with a value that cannot mean anything (`PORT=eighty`)."""

    def __init__(self, variable: str, message: str):
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class LynkrEnv:
    """What a Lynkr `.env` says, as pipeline values (docs/lynkr-env.md, one row per variable)."""

    provider: str
    target: str
    fallback: str
    tiers: dict
    providers: dict
    models: dict
    on: dict
    why_off: dict           # stage name -> "SEMANTIC_CACHE_ENABLED=false"
    host: str
    port: int
    max_body_bytes: int
    max_in_flight: int
    exact_ttl: float
    exact_entries: int
    memory: dict            # the memory stage's options (MEMORY_*); on only with MEMORY_ENABLED=true
    telemetry: str
    state_dir: str
    env: Mapping[str, str] = field(repr=False, default_factory=dict)


def read_lynkr_env(env: Mapping[str, str]) -> LynkrEnv:
    provider = _provider_name(env.get("MODEL_PROVIDER") or "anthropic")
    models = {name: env.get(var) or default if var else default for name, (var, default) in MODELS.items()}
    on, why_off = _switches(env)
    memory, on["memory"], why = _memory(env)
    if why:
        why_off["memory"] = why
    return LynkrEnv(
        provider=provider,
        target=f"{provider}:{models[provider] if provider in models else env.get('MODEL_DEFAULT') or '*'}",
        fallback=_fallback(env, models),
        tiers={t: _tier(env.get(f"TIER_{t}") or "", provider) for t in ("SIMPLE", "MEDIUM", "COMPLEX", "REASONING")},
        providers=_providers(env),
        models=_price_overrides(env.get("MODEL_PRICE_OVERRIDES")),
        on=on, why_off=why_off,
        host=env.get("LYNKR_HOST") or env.get("HOST") or "127.0.0.1",
        port=_number(env, "PORT", 8081),
        max_body_bytes=_bytes(env.get("REQUEST_JSON_LIMIT")),
        max_in_flight=_number(env, "LOAD_SHEDDING_ACTIVE_REQUESTS_THRESHOLD", 2048),
        exact_ttl=_number(env, "PROMPT_CACHE_TTL_MS", 3_600_000) / 1000,
        exact_entries=_number(env, "PROMPT_CACHE_MAX_ENTRIES", 5000),
        memory=memory,
        telemetry=env.get("LYNKR_TELEMETRY") or ".lynkr/telemetry.duckdb",
        state_dir=env.get("LYNKR_STATE_DIR") or ".lynkr",
        env=env,
    )


def _provider_name(value: str) -> str:
    return value.strip().lower().replace("z-ai", "zai")


def _tier(value: str, provider: str) -> str:
    """`TIER_X=model` uses MODEL_PROVIDER; so does an Ollama tag (`qwen2.5-coder:32b`) under
    MODEL_PROVIDER=ollama, whose colon does not name a provider."""
    if not value:
        return ""
    head = value.split(":")[0]
    if ":" not in value or (provider == "ollama" and head not in PROVIDERS):
        return f"{provider}:{value}"
    return value


def _fallback(env: Mapping[str, str], models: dict) -> str:
    name = _provider_name(env.get("FALLBACK_PROVIDER") or "")
    if not name or (env.get("FALLBACK_ENABLED") or "true").strip().lower() in _OFF:
        return ""
    return f"{name}:{models[name] if name in models else env.get('FALLBACK_MODEL') or '*'}"


def _provider(name: str, env: Mapping[str, str]) -> dict:
    kind, fixed, options = PROVIDERS[name]
    out: dict = {"kind": kind, **fixed}
    env_vars = {}
    for option, (names, default) in options.items():
        out[option] = next((env[v] for v in names if env.get(v)), default)
        env_vars[names[0]] = option
    if name in ("llamacpp", "lmstudio") and not out["base_url"].endswith(("/v1", "/chat/completions")):
        out["base_url"] += "/v1"   # Node.js Lynkr took the server's root; the OpenAI API lives under /v1
    if name == "ollama":
        out["num_ctx"] = _number(env, "OLLAMA_NUM_CTX", 65536)
    if name in TIMEOUTS:
        var, default = TIMEOUTS[name]
        ms = _number(env, var, default)
        if ms is not None:
            out["timeouts"] = {"read": ms / 1000, "first_byte": ms / 1000}
    out["env_vars"] = env_vars
    return out


def _providers(env: Mapping[str, str]) -> dict:
    providers = {name: _provider(name, env) for name in PROVIDERS}
    embed = _embeddings_provider(env)
    if embed:
        providers[embed]["embeddings"] = True     # /v1/embeddings is forwarded to it (else served locally)
    return providers


def _embeddings_provider(env: Mapping[str, str]) -> str | None:
    """EMBEDDINGS_PROVIDER when it names an OpenAI-compatible provider; Ollama's own embeddings
    API is not forwarded, so `ollama` leaves /v1/embeddings to the local model (and `ignored` says so)."""
    name = _provider_name(env.get("EMBEDDINGS_PROVIDER") or "")
    return name if name in PROVIDERS and PROVIDERS[name][0] == "openai" else None


def _switches(env: Mapping[str, str]) -> tuple[dict, dict]:
    on, why = {}, {}
    for stage, names in SWITCHES.items():
        off = next((v for v in names if (env.get(v) or "").strip().lower() in _OFF), None)
        on[stage] = off is None
        if off:
            why[stage] = f"{off}={env[off]}"
    return on, why


def _memory(env: Mapping[str, str]) -> tuple[dict, bool, str | None]:
    """The memory stage: opt-in here (the Node.js Lynkr had it on by default, in one store for
    every project); its options from MEMORY_RETRIEVAL_LIMIT, MEMORY_SURPRISE_THRESHOLD and
    MEMORY_TTL (milliseconds, as Node.js read it)."""
    raw = (env.get("MEMORY_ENABLED") or "").strip().lower()
    on = bool(raw) and raw not in _OFF
    why = None if on else (f"MEMORY_ENABLED={env['MEMORY_ENABLED']}" if raw else "MEMORY_ENABLED unset (opt-in)")
    surprise = (env.get("MEMORY_SURPRISE_THRESHOLD") or "").strip()
    try:
        surprise_value = float(surprise) if surprise else 0.3
    except ValueError:
        raise LynkrEnvError("MEMORY_SURPRISE_THRESHOLD", f"'{surprise}' is not a number between 0 and 1") from None
    if not 0 <= surprise_value <= 1:
        raise LynkrEnvError("MEMORY_SURPRISE_THRESHOLD", f"'{surprise}' is not a number between 0 and 1")
    ttl_ms = _number(env, "MEMORY_TTL", 90 * 86400 * 1000)
    if ttl_ms <= 0:
        raise LynkrEnvError("MEMORY_TTL", f"'{ttl_ms}' is not a positive number of milliseconds")
    return ({"retrieval_limit": _number(env, "MEMORY_RETRIEVAL_LIMIT", 5), "surprise_threshold": surprise_value,
             "ttl": ttl_ms / 1000}, on, why)


def _number(env: Mapping[str, str], var: str, default):
    raw = (env.get(var) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise LynkrEnvError(var, f"'{raw}' is not a whole number") from None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$", re.I)


def _bytes(raw: str | None) -> int:
    """REQUEST_JSON_LIMIT as Node.js wrote it (`1gb`, `50mb`); unset is this server's 32 MB."""
    if not raw:
        return 32 * 1024 * 1024
    m = _SIZE.match(raw)
    if not m:
        raise LynkrEnvError("REQUEST_JSON_LIMIT", f"'{raw}' is not a size like 50mb")
    scale = {"b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3}[(m.group(2) or "b").lower()]
    return max(1024, int(float(m.group(1)) * scale))


def _price_overrides(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise LynkrEnvError("MODEL_PRICE_OVERRIDES", f"not JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise LynkrEnvError("MODEL_PRICE_OVERRIDES", 'expected {"model": {"input": 0.5, "output": 1.5}}')
    return data


def ignored(env: Mapping[str, str]) -> list[str]:
    """The Node.js Lynkr variables set in `env` that mean nothing here, sorted."""
    out = [v for v in env if env.get(v) and v not in MAPPED and (v in IGNORED or v.startswith(IGNORED_PREFIXES))]
    if env.get("EMBEDDINGS_PROVIDER") and not _embeddings_provider(env):
        out.append("EMBEDDINGS_PROVIDER")
    return sorted(out)


def unknown_in_dotenv(names, known_elsewhere=()) -> list[tuple[str, str | None]]:
    """Names in a `.env` that are neither a Lynkr variable nor one this server reads, with the
    variable each was probably meant to be."""
    known = MAPPED | IGNORED | set(known_elsewhere)
    out = []
    for name in names:
        if name in known or name.startswith(IGNORED_PREFIXES):
            continue
        out.append((name, did_you_mean(name, known)))
    return out


def hot_reload(env: Mapping[str, str]) -> bool:
    """HOT_RELOAD_ENABLED=false: `lynkr run` does not watch the pipeline file."""
    return (env.get("HOT_RELOAD_ENABLED") or "true").strip().lower() not in _OFF
