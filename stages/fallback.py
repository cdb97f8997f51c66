"""fallback: an `on_error` handler that re-routes a failed call to its `to:` target(s), in order.

    - {id: call, uses: provider_call, on_error: backup}
    - {id: backup, uses: fallback, with: {to: ["openrouter:anthropic/claude-sonnet-4.5"]}}

It acts only on failures before the client saw a byte (provider_call returns a stream only once
its first event arrived; a later failure ends the stream with an error event instead). Fatal
errors (400/401/403/413, "prompt is too long") are relayed as they are: another model would not
fix the request, and Claude Code's compaction needs the original wording.
"""
from __future__ import annotations

from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Route
from lynkr.providers.call import call_target, configure_breakers
from lynkr.stage import Stage


class Fallback(Stage):
    name = "fallback"
    edits = "copy-on-write"
    summary = "Re-routes a failed provider call to other provider:model targets, in order."
    critical = True
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["to"],
        "properties": {
            "to": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                   "description": "provider:model, or a list tried in order; empty (e.g. an unset env var) "
                                  "disables fallback and relays the original error"},
        },
    }

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        raw = options["to"]
        targets = raw if isinstance(raw, list) else [raw]
        self.targets = []
        for j, t in enumerate(targets):
            if t:
                self.targets.append(ctx.route(t, "to", *((j,) if isinstance(raw, list) else ()), reason="fallback"))
        self.breakers = configure_breakers(ctx.config, ctx.shared)

    async def run(self, x: Exchange) -> None:
        err = x.error
        if not isinstance(err, ProxyError):
            err = ProxyError(502, f"provider call failed: {type(err).__name__}: {err}", retryable=False,
                             fallbackable=True)
        # tier_route's per-tier fallbacks (`with: {fallbacks: {TIER: [...]}}`) are tried first.
        targets = [Route.parse(t, reason="fallback") for t in x.vars.get("route_fallbacks") or ()] + self.targets
        targets = [r for i, r in enumerate(targets) if str(r) not in {str(t) for t in targets[:i]}]
        if not err.fallbackable or not targets:
            raise err
        failed = x.route
        attempts: list = []
        ev = x.stage_event
        last = err
        for route in targets:
            if failed is not None and str(route) == str(failed):
                continue
            if x.dry_run:
                x.route = route
                return
            try:
                resp = await call_target(x, route, self.ctx.providers, self.breakers, attempts)
            except ProxyError as e:
                last = e
                if not e.fallbackable:
                    break
                continue
            x.response = resp
            x.route = Route(route.provider, route.model, tier=failed.tier if failed else None, reason="fallback")
            x.vars["fallback"] = str(route)
            resp.headers["x-lynkr-fallback"] = str(route)
            resp.headers["x-lynkr-model"] = str(x.vars.get("upstream_model") or route.model)
            if failed is not None:
                resp.headers["x-lynkr-fallback-from"] = str(failed)
            ev.detail.update({"from": str(failed) if failed else None, "to": str(route), "attempts": attempts})
            return
        ev.detail.update({"from": str(failed) if failed else None, "attempts": attempts})
        # The client gets the primary's failure unless a fallback failed for a reason of its own
        # that is more telling (a fatal error from the fallback target).
        raise last if (last is not err and not last.fallbackable) else err
