"""The OpenAI-compatible family: OpenAI, OpenRouter, llama.cpp server, LM Studio, DeepSeek,
Moonshot/Kimi, Z.AI, Databricks serving endpoints, Gemini's OpenAI layer — and Azure OpenAI.

    openrouter: {kind: openai, base_url: https://openrouter.ai/api/v1, api_key: "{{ env.OPENROUTER_API_KEY }}"}
    azure:      {kind: azure_openai, base_url: https://res.openai.azure.com, deployment: gpt-4o,
                 api_version: 2024-10-21, api_key: …}

The format conversion is the wire module's (lynkr/wire/openai_chat/upstream.py: from_canonical,
message_from_openai, events_from_openai); this adapter owns transport, auth and what differs
per target ("flavor", guessed from base_url, or set with `flavor:`):
- deepseek / moonshot need `reasoning_content` sent back on assistant turns (400 otherwise);
  every other target gets it removed, since strict servers reject unknown message fields;
- `max_tokens` is clamped to the model's limit (`max_output`, DeepSeek's default 8192);
- schema keywords a target rejects are pruned (`prune_schema: [...]`; Gemini's layer: `$schema`,
  `additionalProperties`);
- llama.cpp merges consecutive same-role turns (its chat templates reject them);
- OpenRouter gets its attribution headers; Databricks its `/serving-endpoints/{model}/invocations`;
  Azure its deployment path and `api-version` (or the v1 path when base_url ends in /openai/v1);
- prompt caching (lynkr/providers/prompt_cache.py): OpenRouter serving Claude or Gemini gets the
  request's `cache_control` markers on content parts; OpenAI and Azure get a per-session
  `prompt_cache_key` (the client's own, e.g. Codex's, wins).
"""
from __future__ import annotations

import time
from urllib.parse import urlparse

import orjson

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Response
from lynkr.wire import openai_chat
from lynkr.wire.sse import iter_sse
from lynkr.providers import prompt_cache
from lynkr.providers.base import COMMON_OPTIONS, Provider, provider_options
from lynkr.providers.prepare import prune_schema

__all__ = ["OpenAIProvider", "AzureOpenAIProvider", "guess_flavor"]

_HOSTS = {"openrouter.ai": "openrouter", "api.deepseek.com": "deepseek", "api.moonshot.ai": "moonshot",
          "api.moonshot.cn": "moonshot", "api.z.ai": "zai", "open.bigmodel.cn": "zai", "api.openai.com": "openai",
          "generativelanguage.googleapis.com": "gemini"}
_REASONING_BACK = {"deepseek", "moonshot"}
_HOSTED = {"openrouter", "deepseek", "moonshot", "zai", "openai", "gemini", "databricks", "azure"}
_DEFAULT_LIMITS = {"deepseek": 8192}
_PRUNE = {"gemini": frozenset({"$schema", "additionalProperties"})}


def guess_flavor(base_url: str, config: dict) -> str:
    if config.get("flavor"):
        return config["flavor"]
    u = urlparse(base_url)
    host = u.hostname or ""
    for h, f in _HOSTS.items():
        if host == h or host.endswith("." + h):
            return f
    if "databricks" in host or "/serving-endpoints" in u.path:
        return "databricks"
    if u.port == 1234:
        return "lmstudio"
    if u.port == 8080 and host in ("localhost", "127.0.0.1"):
        return "llamacpp"
    return "openai"


def _merge_same_role(messages: list[dict]) -> list[dict]:
    out: list[dict] = []
    for m in messages:
        prev = out[-1] if out else None
        if (prev is not None and prev["role"] == m["role"] and m["role"] in ("user", "system")
                and isinstance(prev.get("content"), str) and isinstance(m.get("content"), str)):
            out[-1] = {**prev, "content": prev["content"] + "\n\n" + m["content"]}
        else:
            out.append(m)
    return out


class OpenAIProvider(Provider):
    kind = "openai"
    summary = "OpenAI Chat Completions and compatibles: OpenAI, OpenRouter, DeepSeek, Moonshot, llama.cpp, LM Studio, Databricks."
    options_schema = provider_options(
        flavor={"type": "string", "description": "which compatible API (openai, openrouter, deepseek, moonshot, zai, "
                                                 "gemini, databricks, llamacpp, lmstudio); default: from base_url"},
        path={"type": "string", "description": "the completions path under base_url ({model} is replaced); "
                                               "default /chat/completions"},
        prune_schema={"type": "array", "items": {"type": "string"},
                      "description": "JSON Schema keywords removed from tool parameters (an API that refuses them)"},
        organization={"type": "string", "description": "the openai-organization header"},
        referer={"type": "string", "description": "OpenRouter's http-referer header"},
        title={"type": "string", "description": "OpenRouter's x-title header"},
        embeddings={"type": "boolean", "default": False,
                    "description": "forward /v1/embeddings to this provider (else the local model serves it)"},
    )
    family = r"gpt-|o[1-9]|chatgpt|codex"
    default_model = "gpt-4o"
    home = "api.openai.com"

    def __init__(self, name: str, config: dict):
        super().__init__(name, config)
        # Lynkr's *_ENDPOINT variables hold the full URL; base_url here ends before /chat/completions.
        if self.base_url.endswith("/chat/completions") and "/openai/deployments/" not in self.base_url:
            self.base_url = self.base_url[: -len("/chat/completions")]
        self.flavor = guess_flavor(self.base_url, config)
        self.path = config.get("path") or ("/serving-endpoints/{model}/invocations" if self.flavor == "databricks"
                                           else "/chat/completions")
        extra = config.get("prune_schema")
        self.prune = frozenset(extra) if extra else _PRUNE.get(self.flavor, frozenset())

    @classmethod
    def check(cls, name: str, config: dict) -> list[tuple[str, str]]:
        problems = super().check(name, config)
        # Hosted APIs need a key; local servers (llama.cpp, LM Studio, vLLM) usually do not.
        if guess_flavor(config.get("base_url") or "", config) in _HOSTED and not config.get("api_key"):
            from lynkr.providers.base import missing_message
            problems.append(("api_key", missing_message(name, config, "api_key")))
        return problems

    def model_limit(self, model: str) -> int | None:
        return super().model_limit(model) or _DEFAULT_LIMITS.get(self.flavor)

    def local_models(self) -> bool:
        return guess_flavor(self.base_url, self.config) in ("llamacpp", "lmstudio")

    def url(self, model: str) -> str:
        return self.base_url + self.path.replace("{model}", model)

    def headers(self) -> dict:
        h = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            h["authorization"] = f"Bearer {self.api_key}"
        if self.flavor == "openrouter":
            h["http-referer"] = self.config.get("referer") or "https://github.com/lynkr"
            h["x-title"] = self.config.get("title") or "Lynkr"
        if self.config.get("organization"):
            h["openai-organization"] = self.config["organization"]
        return h

    def build(self, request: dict, model: str, *, cache_markers: bool = False) -> dict:
        body = openai_chat.from_canonical(request, model, cache_markers=cache_markers)
        limit = self.model_limit(model)
        for key in ("max_tokens", "max_completion_tokens"):
            if limit and isinstance(body.get(key), int) and body[key] > limit:
                body[key] = limit
        if self.flavor not in _REASONING_BACK and any("reasoning_content" in m or "reasoning_details" in m
                                                      for m in body["messages"]):
            keep_details = self.flavor == "openrouter"
            body["messages"] = [{k: v for k, v in m.items()
                                 if k != "reasoning_content" and (keep_details or k != "reasoning_details")}
                                for m in body["messages"]]
        if self.prune and body.get("tools"):
            body["tools"] = [{**t, "function": {**t["function"], "parameters": prune_schema(
                t["function"].get("parameters") or {}, drop=self.prune)}} for t in body["tools"]]
        if self.flavor == "llamacpp":
            body["messages"] = _merge_same_role(body["messages"])
        return body

    def upstream_body(self, x: Exchange, model: str) -> dict:
        """The body this provider sends for `x` (`lynkr replay` models the prompt cache on it)."""
        rules = self.cache_rules(model)
        body = self.build(x.request, model, cache_markers=rules.markers == "parts")
        key = prompt_cache.session_cache_key(x.session) if rules.cache_key else None
        if key and "prompt_cache_key" not in body:
            body["prompt_cache_key"] = key
        return body

    async def send(self, x: Exchange, model: str) -> Response:
        body = self.upstream_body(x, model)
        x.upstream_request = body
        resp = await self.post(self.url(model), body, self.headers(), params=self.params(), x=x)
        first = time.perf_counter()
        if body.get("stream"):
            return Response(events=openai_chat.events_from_openai(self._chunks(resp), x.request), first_byte_at=first)
        data = await self.read_json(resp)
        if data.get("error"):
            err = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
            raise ProxyError(502, err.get("message") or "upstream error", provider=self.name)
        msg = openai_chat.message_from_openai(data, x.request)
        return Response(message=msg, usage=msg.get("usage") or {}, first_byte_at=first,
                        upstream_done_at=time.perf_counter())

    def params(self) -> dict | None:
        return None

    async def _chunks(self, resp):
        """SSE `data:` payloads as dicts; a stream that stops without `[DONE]` or a finish_reason
        was cut off, and says so instead of passing for a complete answer."""
        finished = False
        try:
            async for _event, data in iter_sse(resp.content):
                if not data:
                    continue
                if data.strip() == b"[DONE]":
                    finished = True
                    break
                chunk = orjson.loads(data)
                if isinstance(chunk, dict):
                    if any(c.get("finish_reason") for c in chunk.get("choices") or () if isinstance(c, dict)):
                        finished = True
                    yield chunk
            if not finished:
                raise ProxyError(502, f"provider '{self.name}' ended the stream before it finished",
                                 provider=self.name)
        finally:
            resp.release()


class AzureOpenAIProvider(OpenAIProvider):
    """Classic Azure: `/openai/deployments/{deployment}/chat/completions?api-version=…` with an
    `api-key` header; the v1 API (base_url ending in /openai/v1) is the plain OpenAI shape."""

    kind = "azure_openai"
    summary = "Azure OpenAI: deployments (api-version) or the v1 API."
    options_schema = provider_options(
        **{k: v for k, v in OpenAIProvider.options_schema["properties"].items() if k not in COMMON_OPTIONS},
        api_version={"type": "string", "default": "2024-10-21", "description": "the api-version query parameter"},
        deployment={"type": "string", "description": "the deployment name; default: the model"},
    )
    required = ("base_url", "api_key")

    def __init__(self, name: str, config: dict):
        super().__init__(name, {**config, "flavor": config.get("flavor") or "azure"})
        self.v1 = self.base_url.rstrip("/").endswith("/openai/v1")
        self.api_version = config.get("api_version") or "2024-10-21"

    def url(self, model: str) -> str:
        if self.v1:
            return self.base_url + "/chat/completions"
        base = self.base_url
        if "/openai/deployments/" in base:       # a full deployment URL was given
            return base.split("/chat/completions")[0] + "/chat/completions"
        deployment = self.config.get("deployment") or model
        return f"{base}/openai/deployments/{deployment}/chat/completions"

    def params(self) -> dict | None:
        return None if self.v1 else {"api-version": self.api_version}

    def build(self, request: dict, model: str, *, cache_markers: bool = False) -> dict:
        body = super().build(request, model, cache_markers=cache_markers)
        # stream_options arrived in api-version 2024-09-01-preview; older versions reject the
        # field (Lynkr's default was 2024-08-01-preview), and then usage comes without it anyway.
        if not self.v1 and self.api_version < "2024-09-01" and "stream_options" in body:
            body = {k: v for k, v in body.items() if k != "stream_options"}
        return body

    def headers(self) -> dict:
        h = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            h["api-key"] = self.api_key
        return h
