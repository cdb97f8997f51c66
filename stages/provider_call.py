"""provider_call: send the request to `x.route` (or this stage's `to:`) and set the response.

    - id: call
      uses: provider_call
      with: {to: "anthropic:claude-sonnet-4-5"}
      on_error: backup
"""
from __future__ import annotations

import time

from lynkr.config import check_target
from lynkr.errors import ProxyError
from lynkr.exchange import Exchange, Route
from lynkr.stage import Stage


class ProviderCall(Stage):
    name = "provider_call"
    summary = "Calls the routed provider and model; the pipeline's default when nothing routed."
    critical = True
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "to": {"type": "string",
                   "description": "provider:model used when no stage set a route; provider:* keeps the client's model"},
        },
    }
    examples = ["- {id: call, uses: provider_call, with: {to: 'ollama:qwen2.5-coder:7b'}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.default = Route.parse(options["to"], reason="default") if options.get("to") else None
        if options.get("to"):
            check_target(ctx.cfg, options["to"], ("stages", ctx.index, "with", "to"))

    async def run(self, x: Exchange) -> None:
        route = x.route or self.default
        if route is None:
            raise ProxyError(500, "no route: set provider_call `with: {to: provider:model}` or add a tier_route stage",
                             retryable=False)
        x.route = route
        if x.dry_run:
            return
        provider = self.ctx.providers.get(route.provider)
        if provider is None:
            raise ProxyError(500, f"provider '{route.provider}' is not enabled in this pipeline", retryable=False)
        x.vars["upstream_started_at"] = time.perf_counter()
        model = x.request.get("model") if route.model == "*" else route.model
        x.response = await provider.send(x, model)
