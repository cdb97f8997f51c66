"""One call to a `provider:model`, the way provider_call and fallback make it.

The target comes from the route (an earlier stage), the pipeline's `models:` table or a default;
the call goes through the provider's retry policy, its circuit breaker and its first-byte limit
(lynkr/providers/resilience.py), then through the request's response interceptors
(`x.interceptors`): hooks that answer tool calls the proxy itself added, like crush's
`lynkr_expand`, and may send another body to the same provider and model. Before the call the
request's prompt-cache markers are made right for the upstream (lynkr/providers/prompt_cache.py).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import weakref

from lynkr.config.keys import model_allowed
from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Response, Route
from lynkr.providers import prompt_cache as prompt_caching
from lynkr.providers.resilience import Breakers, RetryPolicy, breakers_for, call_resilient
from lynkr.wire.answered import merged

__all__ = ["call_target", "configure_breakers", "resolve_model_route", "intercept", "prepare_cache",
           "upstream_model", "DEFAULT_FIRST_BYTE_S"]

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


def prepare_cache(x: Exchange, provider, model: str | None, options: dict | None = None) -> None:
    """The request's prompt-cache markers made right for this upstream, as a copy-on-write edit
    of `x.request`; what changed goes in the calling stage's event detail. `options` are
    provider_call's `prompt_cache:` (breakpoints: bool, ttl: 5m|1h)."""
    opts = options or {}
    rules = provider.cache_rules(model)
    request, note = prompt_caching.prepare(x.request, rules, breakpoints=opts.get("breakpoints", True),
                                           ttl=opts.get("ttl"))
    if request is not x.request:
        x.request = request
    if note and x.stage_event is not None:
        x.stage_event.detail["prompt_cache"] = note


async def call_target(x: Exchange, route: Route, providers: dict, breakers: Breakers, attempts: list,
                      *, prompt_cache: dict | None = None) -> Response:
    """Send to one provider:model with that provider's retry policy, breaker and first-byte limit;
    each try is appended to `attempts`. Raises the ProxyError of a target that cannot answer."""
    provider = providers.get(route.provider)
    if provider is None:
        raise ProxyError(500, f"provider '{route.provider}' is not enabled in this pipeline", retryable=False,
                         fallbackable=True)
    model = upstream_model(provider, route, x)
    allowed = x.vars.get("allowed_models")
    if allowed and not model_allowed(allowed, f"{route.provider}:{model}"):
        # The client's key may not use this model (keys.NAME.models); no fallback around it.
        raise ProxyError(403, f"key {x.vars.get('key')} may not use {route.provider}:{model}; "
                         f"its models are: {', '.join(allowed)}", type="permission_error", retryable=False,
                         fallbackable=False)
    prepare_cache(x, provider, model, prompt_cache)
    retry, first_byte_s = _policy(provider)

    def send(ex: Exchange):
        return call_resilient(provider, ex, model, retry=retry, breakers=breakers,
                              first_byte_s=first_byte_s, log=attempts)
    response = provider.recover_text_calls(x, await send(x))
    if "text_tool_calls" in x.vars and x.stage_event is not None:
        # Filled as the answer streams, so the telemetry row (written at the end) has it all.
        x.stage_event.detail["text_tool_calls"] = x.vars["text_tool_calls"]
    if x.interceptors:
        response = await intercept(x, response, lambda body: send(dataclasses.replace(x, request=body)))
    return response


def upstream_model(provider, route: Route, x: Exchange) -> str | None:
    """The model name sent: the route's, or for `provider:*` the client's when the provider serves
    that family and the provider's default when it does not (recorded in `x.vars` for telemetry,
    the request log, `lynkr explain` and the `x-lynkr-model` response header)."""
    requested = x.request.get("model")
    model = provider.model_for(requested) if route.model == "*" else route.model
    x.vars["upstream_model"] = model
    if route.model == "*" and model != requested:
        x.vars["model_mapped"] = (f"{requested!r} is not a model of provider '{route.provider}' "
                                  f"(family {provider.family_pattern()!r}): its default {model} is sent")
    return model


async def intercept(x: Exchange, response: Response, resend) -> Response:
    """The request's interceptors in order over what the upstream answered; `resend(request_body)
    -> Response` sends another body to the same provider and model."""
    for hook in merged(x.interceptors):
        response = await hook(x, response, resend)
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


def configure_breakers(config: dict, shared: dict) -> Breakers:
    """The load's breakers (one set shared by every calling stage), with each provider's settings."""
    breakers = breakers_for(shared)
    for name, conf in (config.get("providers") or {}).items():
        breakers.settings[name] = conf.get("breaker") or {}
    return breakers
