"""fallback: an `on_error` handler that re-routes a failed call to its `to:` target(s), in order.

    - {id: call, uses: provider_call, on_error: backup}
    - {id: backup, uses: fallback, with: {to: ["openrouter:anthropic/claude-sonnet-4.5"]}}
"""
from __future__ import annotations

from lynkr.config import check_target
from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Route
from lynkr.stage import Stage


class Fallback(Stage):
    name = "fallback"
    summary = "Re-routes a failed provider call to other provider:model targets, in order."
    critical = True
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["to"],
        "properties": {
            "to": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                   "description": "provider:model, or a list tried in order"},
        },
    }

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        targets = options["to"] if isinstance(options["to"], list) else [options["to"]]
        for j, t in enumerate(targets):
            path = ("stages", ctx.index, "with", "to") + ((j,) if isinstance(options["to"], list) else ())
            check_target(ctx.cfg, t, path)
        self.targets = [Route.parse(t, reason="fallback") for t in targets]

    async def run(self, x: Exchange) -> None:
        err = x.error
        if isinstance(err, ProxyError) and not err.fallbackable:
            raise err
        last = err
        for route in self.targets:
            provider = self.ctx.providers.get(route.provider)
            if provider is None or x.dry_run:
                continue
            try:
                x.response = await provider.send(x, route.model)
            except ProxyError as e:
                last = e
                if not e.fallbackable:
                    raise
                continue
            x.vars["fallback"] = str(route)
            x.route = route
            x.response.headers["x-lynkr-fallback"] = str(route)
            return
        raise last if isinstance(last, ProxyError) else ProxyError(502, "all fallback targets failed")
