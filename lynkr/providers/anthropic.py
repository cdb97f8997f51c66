"""Anthropic Messages upstreams: Anthropic, Azure Anthropic (Foundry) and any Anthropic-compatible
endpoint (Z.AI's, Moonshot's, Ollama ≥ 0.14's `/v1/messages`). The canonical form *is* the
Messages shape, so the body passes through with only what stages changed; thinking blocks and
their signatures are never touched.

    anthropic: {kind: anthropic, base_url: https://api.anthropic.com, api_key: "{{ env.ANTHROPIC_API_KEY }}"}
    zai:       {kind: anthropic, base_url: https://api.z.ai/api/anthropic, api_key: …}
"""
from __future__ import annotations

import time
from urllib.parse import urlparse

from lynkr.exchange import Exchange, Response
from lynkr.wire.canonical import SYNTHETIC_SIGNATURE, for_anthropic_upstream
from lynkr.wire.sse import SSEBody
from lynkr.providers.base import Provider, provider_options
from lynkr.providers.prepare import clamp_max_tokens, strip_billing

__all__ = ["AnthropicProvider"]

_FORWARD = ("anthropic-beta", "anthropic-version")


class AnthropicProvider(Provider):
    kind = "anthropic"
    summary = "Anthropic Messages: api.anthropic.com, Azure Anthropic (Foundry), Z.AI and other compatible APIs."
    options_schema = provider_options(
        path={"type": "string", "default": "/v1/messages", "description": "the Messages path under base_url"},
        version={"type": "string", "default": "2023-06-01", "description": "the anthropic-version header"},
        auth={"type": "string", "default": "x-api-key",
              "description": "how the key is sent: x-api-key, bearer (Authorization: Bearer) or another header name"},
        strip_billing={"type": "boolean", "description": "drop Claude Code's billing line from the system prompt "
                                                         "(default: everywhere but anthropic.com)"},
        forward_client_auth={"type": "boolean", "default": True,
                             "description": "with no api_key, send the client's own credential headers"},
    )
    family = "claude"
    default_model = "claude-sonnet-4-5"
    home = "anthropic.com"

    def __init__(self, name: str, config: dict):
        super().__init__(name, config)
        self.path = config.get("path") or "/v1/messages"
        if self.base_url.endswith("/v1/messages"):     # Lynkr's ZAI_/AZURE_ANTHROPIC_ENDPOINT are full URLs
            self.base_url = self.base_url[: -len("/v1/messages")]
        host = urlparse(self.base_url).hostname or ""
        # The billing block means something only to Anthropic itself; anywhere else it just
        # defeats prefix caching (a different `cch` every request).
        self.strip_billing = config.get("strip_billing", not host.endswith("anthropic.com"))
        self.auth = config.get("auth") or "x-api-key"      # x-api-key | bearer | api-key

    @classmethod
    def check(cls, name: str, config: dict) -> list[tuple[str, str]]:
        problems = super().check(name, config)
        host = urlparse(config.get("base_url") or "").hostname or ""
        # Hosted Anthropic-compatible APIs (Z.AI, Foundry, Moonshot) need a key. api.anthropic.com
        # itself is the default pipeline's target on a machine with nothing set, so there a missing
        # key is Anthropic's own 401, relayed, rather than a pipeline that will not load.
        if (config.get("base_url") and not config.get("api_key") and not host.endswith("anthropic.com")
                and host not in ("localhost", "127.0.0.1", "::1")):
            from lynkr.providers.base import missing_message
            problems.append(("api_key", missing_message(name, config, "api_key")))
        return problems

    def _headers(self, x: Exchange) -> dict:
        h = {"content-type": "application/json", "anthropic-version": self.config.get("version") or "2023-06-01",
             "accept": "application/json"}
        for k in _FORWARD:
            v = x.headers.get(k)
            if v:
                h[k] = v
        if self.api_key:
            if self.auth == "bearer":
                h["authorization"] = f"Bearer {self.api_key}"
            else:
                h[self.auth] = self.api_key
        elif x.client_auth and x.client == "anthropic" and self.config.get("forward_client_auth", True):
            # No key configured: the client's own (API key or Claude Code's OAuth bearer) goes
            # through — only an Anthropic client's: an OpenAI client's `Bearer sk-proj-…` was made
            # for OpenAI and must never reach another company's API.
            h.update(x.client_auth)
        return h

    def build(self, request: dict, model: str) -> dict:
        body = dict(request)
        body["model"] = model
        if self.strip_billing and body.get("system"):
            body["system"] = strip_billing(body["system"])
        msgs = body.get("messages") or []
        if any(_foreign(b) for m in msgs if m.get("role") == "assistant" for b in m.get("content") or ()):
            # Reasoning another provider produced (no signature, or a Gemini one) would be
            # rejected by Anthropic's signature check; real Anthropic blocks pass untouched.
            body["messages"] = [{**m, "content": [b for b in m["content"] if not _foreign(b)]}
                                if m.get("role") == "assistant" and any(_foreign(b) for b in m.get("content") or ())
                                else m for m in msgs]
        mt = clamp_max_tokens(body.get("max_tokens"), self.model_limit(model))
        if mt is not None:
            body["max_tokens"] = mt
        return body

    def upstream_body(self, x: Exchange, model: str) -> dict:
        """The body this provider sends for `x` (`lynkr replay` models the prompt cache on it)."""
        # Requests converted from an OpenAI protocol carry private `_…` keys and synthesised
        # thinking (lynkr.wire.canonical); an Anthropic client's body passes untouched.
        return self.build(for_anthropic_upstream(x.request, x.client), model)

    async def send(self, x: Exchange, model: str) -> Response:
        body = self.upstream_body(x, model)
        x.upstream_request = body
        # The parts serialised already (read from the client's bytes, the exact cache's key,
        # strip_tools) are joined, not serialised again: the same bytes orjson.dumps(body) gives.
        data = x.body.upstream(x, body)
        resp = await self.post(self.base_url + self.path, data, self._headers(x), x=x)
        first = time.perf_counter()
        if body.get("stream"):
            # Readable as events or, for an Anthropic client, as the upstream's bytes (wire/sse.py).
            return Response(events=SSEBody(resp.content, "anthropic", resp.release), first_byte_at=first)
        data = await self.read_json(resp)
        return Response(message=data, usage=data.get("usage") or {}, first_byte_at=first,
                        upstream_done_at=time.perf_counter())


def _foreign(block: dict) -> bool:
    if block.get("type") != "thinking":
        return False
    sig = block.get("signature") or ""
    return not sig or sig == SYNTHETIC_SIGNATURE or sig.startswith("gemini:")

