"""provider_call: send the request to `x.route` (or this stage's `to:`) and set the response.

    - id: call
      uses: provider_call
      with: {to: "anthropic:claude-sonnet-4-5"}
      on_error: backup

Which target: a route set by an earlier stage (tier_route) wins; otherwise the client's model name
is looked up in the pipeline's `models:` table (`claude-haiku-4-5: {route: "ollama:qwen2.5-coder:7b"}`,
glob patterns allowed); otherwise `to:`. Each provider entry carries its own `timeouts`
(connect, read, first_byte), `retry` and `breaker` settings (docs/providers.md); the call itself
is lynkr/providers/call.py.

A streaming answer is returned only after its first event arrived, so a failure before the
client saw a byte is still an error that `on_error: <fallback stage>` can hide.

Prompt caching (`prompt_cache:`, on by default): before the call, the client's `cache_control`
markers are fixed for the upstream and, when the client set none and the upstream honours
markers (Anthropic, Bedrock, OpenRouter serving Claude), breakpoints are added by the policy in
lynkr/providers/prompt_cache.py — an edit of the canonical request, so `lynkr replay` checks
its prefix stability like any stage's. What changed is in this stage's event detail.
"""
from __future__ import annotations

import time

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange
from lynkr.providers.call import (call_target, configure_breakers, prepare_cache, resolve_model_route,
                                  upstream_model)
from lynkr.stage import Stage


class ProviderCall(Stage):
    name = "provider_call"
    edits = "copy-on-write"
    summary = "Calls the routed provider and model (retries, circuit breaker); the pipeline's default when nothing routed."
    critical = True
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "to": {"type": "string",
                   "description": "provider:model used when no stage set a route and the client's model is not in "
                                  "`models:`; provider:* keeps the client's model"},
            "prompt_cache": {
                "type": "object",
                "additionalProperties": False,
                "description": "the upstream's prompt cache: breakpoints where the client set none, the client's "
                               "markers fixed per upstream (docs/providers.md, Prompt caching)",
                "properties": {
                    "breakpoints": {"type": "boolean", "default": True,
                                    "description": "add cache breakpoints (end of tools, end of system, the previous "
                                                   "and the last turn) when the client set none and the upstream "
                                                   "honours markers"},
                    "ttl": {"enum": ["5m", "1h"], "default": "5m",
                            "description": "ttl of the breakpoints Lynkr adds; 1h only reaches upstreams that take it"},
                },
            },
        },
    }
    examples = ["- {id: call, uses: provider_call, with: {to: 'ollama:qwen2.5-coder:7b'}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        to = options.get("to") or None    # an empty `to` (unset env var) means "no default"
        self.default = ctx.route(to, "to", reason="default") if to else None
        self.models = ctx.config.get("models") or {}
        self.breakers = configure_breakers(ctx.config, ctx.shared)
        self.prompt_cache = options.get("prompt_cache") or {}

    async def run(self, x: Exchange) -> None:
        route = x.route or resolve_model_route(self.models, x.request.get("model")) or self.default
        if route is None:
            raise ProxyError(500, "no route: set provider_call `with: {to: provider:model}`, map the model in "
                                  "`models:`, or add a tier_route stage", retryable=False, fallbackable=False)
        x.route = route
        if x.dry_run:
            # `lynkr replay` and `explain` see the request as the upstream would get it.
            provider = self.ctx.providers.get(route.provider)
            if provider is not None:
                prepare_cache(x, provider, upstream_model(provider, route, x), self.prompt_cache)
            return
        x.vars["upstream_started_at"] = time.perf_counter()
        attempts: list = []
        ev = x.stage_event
        try:
            x.response = await call_target(x, route, self.ctx.providers, self.breakers, attempts,
                                           prompt_cache=self.prompt_cache)
            if x.vars.get("upstream_model"):
                x.response.headers["x-lynkr-model"] = str(x.vars["upstream_model"])
        finally:
            ev.detail["target"] = str(route)
            if len(attempts) > 1 or (attempts and "error" in attempts[-1]):
                ev.detail["attempts"] = attempts
