"""tier_route: send each tier to its `provider:model`, check it fits, and price the choice.

    tiers:                                  # top level: all four, or none
      SIMPLE: ollama:qwen2.5-coder:7b
      MEDIUM: ollama:qwen2.5-coder:32b
      COMPLEX: openrouter:anthropic/claude-sonnet-4.5
      REASONING: openrouter:anthropic/claude-opus-4.5
    stages:
      - {id: score, uses: score}
      - id: route
        uses: tier_route
        needs: [score]
        with:
          fallbacks: {COMPLEX: ["anthropic:claude-sonnet-4-5"]}

With all four tiers set, the tier `score` chose picks the target. A request larger than the
target's context window moves up to the first tier whose model holds it. Without tiers, `default`
(or provider_call's `to`) serves everything. Prices and windows come from lynkr/data/models.json
with the pipeline's `models:` laid over it; the estimated cost of the route and of the model the
client asked for (the baseline) are published for telemetry. Token counts here are estimates
from the body's size (the exact count happens later, off the request path).
"""
from __future__ import annotations

from lynkr.config.loader import TIERS
from lynkr.exchange import Exchange, Route
from lynkr.kit.catalog import load_catalog
from lynkr.routing.tiers import BYTES_PER_TOKEN, fit, price
from lynkr.stage import Stage


class TierRoute(Stage):
    name = "tier_route"
    edits = "copy-on-write"
    summary = "Routes the scored tier to its provider:model, moves up when the context does not fit, prices it."
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "default": {"type": "string",
                        "description": "provider:model when the pipeline sets no tiers; empty = provider_call's `to`"},
            "fallbacks": {
                "type": "object", "additionalProperties": False, "default": {},
                "description": "Per tier, provider:model targets the fallback stage tries first if the call fails.",
                "properties": {t: {"type": "array", "items": {"type": "string"},
                                   "description": f"fallback targets for {t}"} for t in TIERS},
            },
            "context_fit": {"type": "boolean", "default": True,
                            "description": "Move up a tier when the request exceeds the model's context window."},
            "reserve_output_tokens": {"type": "integer", "minimum": 0, "default": 4096,
                                      "description": "Room left for the answer when checking the context window."},
            "expected_output_tokens": {"type": "integer", "minimum": 0, "default": 1000,
                                       "description": "Output tokens assumed for the cost estimate "
                                                      "(capped by the request's max_tokens)."},
        },
    }
    examples = ["- {id: route, uses: tier_route, needs: [score]}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        tiers = {k: v for k, v in (ctx.config.get("tiers") or {}).items() if v}
        # The loader already rejected a partial map, unknown providers and malformed targets.
        self.tiers = {t: Route.parse(tiers[t], tier=t) for t in TIERS} if len(tiers) == len(TIERS) else None
        self.default = ctx.route(options["default"], "default", reason="default") if options.get("default") else None
        self.fallbacks: dict[str, list[str]] = {}
        for tier, targets in (options.get("fallbacks") or {}).items():
            for j, t in enumerate(targets):
                ctx.route(t, "fallbacks", tier, j)
            self.fallbacks[tier] = list(targets)
        self.catalog = load_catalog(ctx.config.get("models"))

    async def run(self, x: Exchange) -> None:
        detail: dict = {}
        tokens = x.body.json_len(x.request) // BYTES_PER_TOKEN
        requested = x.request.get("model") if isinstance(x.request.get("model"), str) else None
        if self.tiers is not None:
            tier = x.vars.get("tier")
            if tier not in self.tiers:
                detail["note"] = ("no score stage ran: routed as MEDIUM" if tier is None
                                  else f"unknown tier {tier!r}: routed as MEDIUM")
                tier = "MEDIUM"
            need = tokens + self.options["reserve_output_tokens"] if self.options["context_fit"] else None
            x.route, moved = fit(self.tiers, self.catalog, tier, need)
            if moved:
                detail["context"] = moved
        elif self.default is not None:
            x.route = Route(self.default.provider, self.default.model, tier=x.vars.get("tier"), reason="default")
        else:
            detail["note"] = "no tiers: provider_call's default serves"
        if x.route is not None:
            x.vars["route"] = str(x.route)
            fallbacks = self.fallbacks.get(x.route.tier or "", [])
            if fallbacks:
                x.vars["route_fallbacks"] = fallbacks
        self._price(x, tokens, requested, detail)
        x.stage_event.detail = {"route": x.vars.get("route"), "tier": x.vars.get("tier"), "est_tokens": tokens,
                                **detail}

    def _price(self, x: Exchange, tokens: int, requested: str | None, detail: dict) -> None:
        max_tokens = x.request.get("max_tokens")
        out = self.options["expected_output_tokens"]
        if isinstance(max_tokens, int) and max_tokens > 0:
            out = min(out, max_tokens)
        model = x.route.model if x.route is not None and x.route.model != "*" else requested
        got = price(self.catalog, model, requested, tokens, out)
        x.vars["cost_estimate"] = got["cost"]
        x.vars["baseline_cost_estimate"] = got["baseline"]
        detail["cost"] = got["cost"]
        detail["baseline"] = {"model": requested, "cost": got["baseline"]}
        if "saving" in got:
            detail["saving"] = got["saving"]
