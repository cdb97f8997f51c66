"""The provider adapter interface and what every adapter shares (pooled aiohttp sessions)."""
from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import urlparse

import aiohttp
import orjson

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Response
from lynkr.kit.cache import Bounded
from lynkr.providers import prompt_cache, textcalls
from lynkr.providers.pool import KeyPool, pool_members
from lynkr.providers.resilience import as_proxy_error, parse_retry_after, upstream_error

__all__ = ["Provider", "error_from_body", "session_options", "provider_options", "COMMON_OPTIONS"]


class Provider:
    """One upstream from the pipeline's `providers:` map.

    `send` turns the canonical request into the upstream's wire format and returns a Response
    whose `message` or `events` are canonical (Anthropic-shaped). Failures raise ProxyError
    with the upstream's status and wording, so provider_call and fallback can decide.
    """

    kind: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ("base_url",)   # config keys that must be non-empty
    # The options of a `providers:` entry of this kind: a typo is a load-time error naming the line.
    options_schema: ClassVar[dict] = {}
    # The model names this kind of upstream serves (a regex, matched at the start) and the one sent
    # instead when a route keeps the client's model (`provider:*`) but the client named another
    # family's (Codex's gpt-5-codex to Anthropic would be rejected). None: any name goes through.
    # Only at the kind's own service (`home`, a host suffix): the same adapter also serves gateways
    # and local servers with names of their own. A provider entry's `family:` and `default_model:`
    # override these.
    family: ClassVar[str | None] = None
    default_model: ClassVar[str | None] = None
    home: ClassVar[str | None] = None

    def __init__(self, name: str, config: dict):
        self.name = name
        self.config = config
        self.base_url = (config.get("base_url") or "").rstrip("/")
        members = pool_members(config)
        self._api_key = members[0] if members else None
        # Several upstream keys: each attempt leases one (lynkr.providers.pool, call_resilient).
        self.pool = KeyPool(name, members, config.get("key_pool")) if len(members) > 1 else None
        self._session: aiohttp.ClientSession | None = None
        self.models: dict = {}        # the pipeline's `models:` table (build_providers sets it)
        self.text_tool_calls = textcalls.enabled(config, self.local_models())
        # Per model name (the client's string, so bounded): the name sent and the prompt-cache rules
        # depend on the config and the name alone, and every request asks again.
        self._model_for: Bounded = Bounded(max_entries=512)
        self._cache_rules: Bounded = Bounded(max_entries=512)

    @property
    def api_key(self) -> str | None:
        """The upstream key to send: the pool member of the running attempt, else the one key."""
        if self.pool is not None:
            return self.pool.leased_secret() or self._api_key
        return self._api_key

    def local_models(self) -> bool:
        """Whether this upstream serves local models, which often write tool calls as text
        (`text_tool_calls: auto` recovers them then)."""
        return False

    def recover_text_calls(self, x: Exchange, response: Response) -> Response:
        """The response with tool calls written as text made real, when `text_tool_calls` is on."""
        return textcalls.recover(x, response) if self.text_tool_calls else response

    @classmethod
    def check(cls, name: str, config: dict) -> list[tuple[str, str]]:
        """Problems with this provider's config, as (key, message) pairs; empty when fine.

        `env_vars: {OPENROUTER_API_KEY: api_key}` in a provider entry names the variable an option
        comes from, so the message can say which one to set."""
        return [(key, missing_message(name, config, key)) for key in cls.required if not config.get(key)]

    def family_pattern(self) -> str | None:
        if "family" in self.config:
            return self.config["family"] or None
        host = urlparse(self.base_url).hostname or ""
        at_home = self.home is not None and (host == self.home or host.endswith("." + self.home))
        return self.family if at_home else None

    def model_for(self, requested: str | None) -> str | None:
        """The model to send for a `provider:*` route: the client's own name when this upstream
        serves it, else the provider's default (`default_model:`, or the kind's own)."""
        sent = self._model_for.get(requested)
        if sent is None:       # a Bounded holds no None: the answer (which may be None) in a tuple
            sent = self._model_for.put(requested, (self._pick_model(requested),))
        return sent[0]

    def cache_rules(self, model: str | None) -> prompt_cache.CacheRules:
        """What this upstream takes of prompt-cache markers for `model` (lynkr.providers.prompt_cache)."""
        rules = self._cache_rules.get(model)
        if rules is None:
            rules = self._cache_rules.put(model, prompt_cache.rules_for(self, model))
        return rules

    def _pick_model(self, requested: str | None) -> str | None:
        default = self.config.get("default_model") or self.default_model
        pattern = self.family_pattern()
        if not requested:
            return default or requested
        if pattern is None or default is None or re.match(pattern, requested, re.I):
            return requested
        return default

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(**session_options(self.config))
        return self._session

    @property
    def session_open(self) -> bool:
        """Whether the pooled session is open (it is opened by the first request, closed by aclose)."""
        return self._session is not None and not self._session.closed

    async def send(self, x: Exchange, model: str) -> Response:  # pragma: no cover - interface
        raise NotImplementedError

    def model_limit(self, model: str) -> int | None:
        """The model's max output tokens when the pipeline's `models:` table or the provider's
        `max_output` says so; requests above it are clamped instead of rejected upstream."""
        entry = self.models.get(model)
        if isinstance(entry, dict) and entry.get("max_output"):
            return int(entry["max_output"])
        limits = self.config.get("max_output")
        if isinstance(limits, int):
            return limits
        if isinstance(limits, dict):
            return limits.get(model)
        return None

    async def post(self, url: str, body: dict | bytes, headers: dict, *, params: dict | None = None,
                   x: Exchange | None = None) -> aiohttp.ClientResponse:
        """POST and return the response once its status is 2xx; an error status becomes a
        classified ProxyError carrying the upstream's own wording. With the request `x` traced,
        the upstream attempt's W3C trace context goes with it."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        if x is not None and x.trace is not None:
            headers = x.trace.inject(headers)
        try:
            resp = await self.session.post(url, data=data, headers=headers, params=params)
        except Exception as e:
            raise as_proxy_error(e, self.name) from None
        if resp.status >= 400:
            try:
                raw = await resp.read()
            except Exception:
                raw = b""
            resp.release()
            raise error_from_body(self.name, resp.status, raw, resp.headers)
        return resp

    async def read_json(self, resp: aiohttp.ClientResponse) -> dict:
        try:
            raw = await resp.read()
        except Exception as e:
            raise as_proxy_error(e, self.name) from None
        finally:
            resp.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ProxyError(502, f"provider '{self.name}' sent a body that is not JSON: {raw[:200]!r}",
                             provider=self.name, retryable=True) from None
        if not isinstance(data, dict):
            raise ProxyError(502, f"provider '{self.name}' sent unexpected JSON", provider=self.name, retryable=True)
        return data

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.base_url}>"


def session_options(config: dict) -> dict:
    """The aiohttp.ClientSession arguments of a provider's pooled session (benchmarks.client_cost
    measures the same session)."""
    timeouts = config.get("timeouts") or {}
    return {
        "connector": aiohttp.TCPConnector(limit=int(config.get("max_connections", 256)),
                                          keepalive_timeout=30, ttl_dns_cache=300),
        "timeout": aiohttp.ClientTimeout(total=None, connect=timeouts.get("connect", 10),
                                         sock_read=timeouts.get("read", 600)),
        "auto_decompress": True,
    }


def missing_message(name: str, config: dict, key: str) -> str:
    var = next((v for v, opt in (config.get("env_vars") or {}).items() if opt == key), None)
    msg = f"provider '{name}' ({config.get('kind')}) needs `{key}`"
    return msg + (f": set {var}" if var else "")


def error_from_body(provider: str, status: int, raw: bytes, headers) -> ProxyError:
    """The upstream's error wording from any of the shapes providers use:
    Anthropic/OpenAI `{"error": {"message", "type"}}`, Ollama `{"error": "…"}`, Bedrock
    `{"message": "…"}` (+ `x-amzn-ErrorType`), Gemini `{"error": {"code", "message", "status"}}`."""
    message = raw.decode("utf-8", "replace").strip()[:2000] or f"HTTP {status}"
    etype = code = None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data and isinstance(data[0], dict):   # Gemini sometimes wraps in a list
        data = data[0]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message") or message
            # Only an Anthropic-shaped body's type means what an Anthropic client reads into it
            # (OpenAI says "invalid_request_error" for a 401 or a 429).
            etype = err.get("type") if data.get("type") == "error" and isinstance(err.get("type"), str) else None
            code = err.get("code") if isinstance(err.get("code"), str) else err.get("status")
        elif isinstance(err, str):
            message = err
        elif isinstance(data.get("message"), str):
            message = data["message"]
        elif isinstance(data.get("Message"), str):
            message = data["Message"]
    amzn = headers.get("x-amzn-errortype") if headers is not None else None
    if amzn:
        code = amzn.split(":")[0]
    if etype not in (None, "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                     "request_too_large", "rate_limit_error", "api_error", "overloaded_error", "timeout_error",
                     "billing_error"):
        etype = None     # another protocol's type names mean nothing to an Anthropic client
    ra = parse_retry_after(headers.get("retry-after")) if headers is not None else None
    low = message.lower()
    if status == 400 and ("model" in low and ("not found" in low or "does not exist" in low)):
        status = 404     # some upstreams say 400 for an unknown model; fallback can act on 404
    return upstream_error(provider, status, message, type=etype, retry_after=ra, code=code)


def provider_options(**own: dict) -> dict:
    """A provider kind's options schema: the options every kind takes and its own (`own`), each
    with a description; `lynkr providers` prints it and the pipeline's JSON Schema checks it."""
    return {"type": "object", "additionalProperties": False, "required": ["kind"],
            "properties": {**COMMON_OPTIONS, **own}}


_SECONDS = {"type": "number", "exclusiveMinimum": 0}

COMMON_OPTIONS: dict = {
    "kind": {"type": "string", "description": "the adapter (`lynkr providers` lists them)"},
    "base_url": {"type": "string", "description": "the upstream's URL, up to the API's own path"},
    "api_key": {"type": ["string", "null", "array"], "items": {"type": ["string", "null"]},
                "description": "the upstream's key; empty means none; a list is a pool of keys (docs/providers.md)"},
    "api_keys": {"type": "array", "items": {"type": ["string", "null"]},
                 "description": "a pool of upstream keys: requests spread over them, one the upstream refuses "
                                "(429, 401, 403) sits out while the others serve"},
    "key_pool": {
        "type": "object", "additionalProperties": False, "description": "how a pool of keys benches a refused one",
        "properties": {
            "cooldown_s": {**_SECONDS, "default": 30.0, "description": "a 429 without retry-after sits out this long"},
            "disable_s": {**_SECONDS, "default": 300.0, "description": "a 401/403 sits out this long, then is tried again"},
        },
    },
    "enabled": {"type": ["boolean", "string"], "default": True,
                "description": "false (or '', 0, no, off) leaves the provider out of the pipeline"},
    "env_vars": {"type": "object", "additionalProperties": {"type": "string"},
                 "description": "variable -> the option it fills ({OPENROUTER_API_KEY: api_key}), so a "
                                "missing value's error names the variable to set"},
    "timeouts": {
        "type": "object", "additionalProperties": False, "description": "seconds to wait for the upstream",
        "properties": {
            "connect": {**_SECONDS, "default": 10, "description": "to open a connection"},
            "read": {**_SECONDS, "default": 600, "description": "between two reads of an answer"},
            "first_byte": {**_SECONDS, "default": 120,
                           "description": "to the answer's first event; a failure until then can still fall back"},
        },
    },
    "retry": {
        "type": "object", "additionalProperties": False,
        "description": "retries of a retryable failure (429, 5xx, timeouts) on the same target, with backoff",
        "properties": {
            "attempts": {"type": "integer", "minimum": 1, "default": 2, "description": "tries in all (1 = no retry)"},
            "base_s": {**_SECONDS, "default": 0.25, "description": "the first backoff"},
            "max_s": {**_SECONDS, "default": 8.0, "description": "the longest backoff"},
            "max_retry_after_s": {"type": "number", "minimum": 0, "default": 30.0,
                                  "description": "a longer Retry-After is relayed to the client, not waited out"},
        },
    },
    "breaker": {
        "type": "object", "additionalProperties": False,
        "description": "the circuit breaker per provider and model",
        "properties": {
            "threshold": {"type": "integer", "minimum": 1, "default": 5,
                          "description": "failures within window_s that open it"},
            "window_s": {**_SECONDS, "default": 60.0, "description": "how far back failures count"},
            "cooldown_s": {**_SECONDS, "default": 30.0, "description": "open this long, then one probe is let through"},
        },
    },
    "max_connections": {"type": "integer", "minimum": 1, "default": 256,
                        "description": "pooled connections to this upstream"},
    "max_output": {"type": ["integer", "object"], "additionalProperties": {"type": "integer"},
                   "description": "max output tokens (one number, or per model); larger requests are clamped"},
    "prompt_cache": {
        "type": "object", "additionalProperties": False,
        "description": "override what this upstream does with prompt-cache markers (docs/providers.md, Prompt caching)",
        "properties": {
            "markers": {"enum": ["cache_control", "cachePoint", "parts", "none"],
                        "description": "how markers are sent: Anthropic blocks, Bedrock cachePoint, OpenAI-chat "
                                       "content parts (OpenRouter), or not at all"},
            "ttl": {"type": "boolean", "description": "the upstream accepts ttl: 1h"},
            "cache_key": {"type": "boolean", "description": "send a per-session prompt_cache_key"},
        },
    },
    "default_model": {"type": "string", "description": "the model sent on a provider:* route when the client's "
                                                    "model is not of this provider's family (docs/providers.md)"},
    "family": {"type": ["string", "null"], "description": "regex (matched at the start) of the model names this "
                                                          "provider serves; null = any name goes through"},
    "text_tool_calls": {"enum": ["auto", "on", "off", True, False], "default": "auto",
                        "description": "recover tool calls the model writes as text (<tool_call>, <|python_tag|>, "
                                       "[TOOL_CALLS], ...): auto = on for ollama and the llama.cpp / LM Studio "
                                       "flavours, off for hosted APIs"},
}

Provider.options_schema = provider_options()
