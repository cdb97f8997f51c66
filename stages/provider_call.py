"""provider_call: send the request to `x.route` (or this stage's `to:`) and set the response.

    - id: call
      uses: provider_call
      with: {to: "anthropic:claude-sonnet-4-5"}
      on_error: backup

Which target: a route set by an earlier stage (tier_route) wins; otherwise the client's model name
is looked up in the pipeline's `models:` table (`claude-haiku-4-5: {route: "ollama:qwen2.5-coder:7b"}`,
glob patterns allowed); otherwise `to:`. Each provider entry carries its own `timeouts`
(connect, read, first_byte), `retry` and `breaker` settings (docs/providers.md).

A streaming answer is returned only after its first event arrived, so a failure before the
client saw a byte is still an error that `on_error: <fallback stage>` can hide.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import time
import weakref

from lynkr.config import check_target
from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Route
from lynkr.providers.resilience import RetryPolicy, breakers_for, call_resilient
from lynkr.stage import Stage

DEFAULT_FIRST_BYTE_S = 120.0


def resolve_model_route(models: dict, client_model: str | None) -> Route | None:
    """The `models:` table entry for the client's model name: exact name first, then globs."""
    if not client_model or not models:
        return None
    entry = models.get(client_model)
    if not (isinstance(entry, dict) and entry.get("route")):
        entry = next((m for pat, m in models.items() if isinstance(m, dict) and m.get("route")
                      and any(c in pat for c in "*?[") and fnmatch.fnmatchcase(client_model, pat)), None)
    if not entry:
        return None
    return Route.parse(entry["route"], reason="models")


async def call_target(stage: Stage, x: Exchange, route: Route, attempts: list):
    """Send to one provider:model with that provider's retry policy, breaker and first-byte limit."""
    provider = stage.ctx.providers.get(route.provider)
    if provider is None:
        raise ProxyError(500, f"provider '{route.provider}' is not enabled in this pipeline", retryable=False,
                         fallbackable=True)
    model = x.request.get("model") if route.model == "*" else route.model
    retry, first_byte_s = _policy(provider)
    def send(ex: Exchange):
        return call_resilient(provider, ex, model, retry=retry, breakers=stage.breakers,
                              first_byte_s=first_byte_s, log=attempts)
    response = await send(x)
    if x.interceptors:      # e.g. crush's lynkr_expand, answered by the proxy (lynkr/engine/intercept.py)
        from lynkr.engine.intercept import intercept
        response = await intercept(x, response, lambda body: send(dataclasses.replace(x, request=body)))
    return response


# Provider objects live as long as their pipeline load: the policy is read from the config once.
_policies: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _policy(provider) -> tuple[RetryPolicy, float]:
    """The provider's retry policy and first-byte limit."""
    policy = _policies.get(provider)
    if policy is None:
        timeouts = provider.config.get("timeouts") or {}
        policy = _policies[provider] = (RetryPolicy.from_config(provider.config.get("retry")),
                                        float(timeouts.get("first_byte", DEFAULT_FIRST_BYTE_S)))
    return policy


def configure_breakers(ctx):
    breakers = breakers_for(ctx.shared)
    for name, conf in (ctx.config.get("providers") or {}).items():
        breakers.settings[name] = conf.get("breaker") or {}
    return breakers


class ProviderCall(Stage):
    name = "provider_call"
    summary = "Calls the routed provider and model (retries, circuit breaker); the pipeline's default when nothing routed."
    critical = True
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "to": {"type": "string",
                   "description": "provider:model used when no stage set a route and the client's model is not in "
                                  "`models:`; provider:* keeps the client's model"},
        },
    }
    examples = ["- {id: call, uses: provider_call, with: {to: 'ollama:qwen2.5-coder:7b'}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        to = options.get("to") or None    # an empty `to` (unset env var) means "no default"
        if to:
            check_target(ctx.cfg, to, ("stages", ctx.index, "with", "to"))
        self.default = Route.parse(to, reason="default") if to else None
        self.models = ctx.config.get("models") or {}
        self.breakers = configure_breakers(ctx)

    async def run(self, x: Exchange) -> None:
        route = x.route or resolve_model_route(self.models, x.request.get("model")) or self.default
        if route is None:
            raise ProxyError(500, "no route: set provider_call `with: {to: provider:model}`, map the model in "
                                  "`models:`, or add a tier_route stage", retryable=False, fallbackable=False)
        x.route = route
        if x.dry_run:
            return
        x.vars["upstream_started_at"] = time.perf_counter()
        attempts: list = []
        ev = x.event(self.id)
        try:
            x.response = await call_target(self, x, route, attempts)
        finally:
            if ev is not None:
                ev.detail["target"] = str(route)
                if len(attempts) > 1 or (attempts and "error" in attempts[-1]):
                    ev.detail["attempts"] = attempts
