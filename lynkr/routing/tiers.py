"""From a tier to a `provider:model`: the context-window fit and the cost estimate (the
`tier_route` stage's algorithm).

A request larger than the tier's model's context window moves up to the first tier whose model
holds it. The estimated cost of the route and of the model the client asked for (the baseline)
come from the model catalogue (lynkr/kit/catalog.py) with the pipeline's `models:` laid over it.
"""
from __future__ import annotations

from lynkr.config.loader import TIERS
from lynkr.exchange import Route
from lynkr.kit.catalog import Catalog

__all__ = ["fit", "price", "BYTES_PER_TOKEN"]

# JSON bytes per token: cl100k averages about 4 characters a token on English and code; the
# JSON punctuation makes this a slight over-estimate, which is the safe side for a fit check.
BYTES_PER_TOKEN = 4


def fit(tiers: dict[str, Route], catalog: Catalog, tier: str, need: int | None) -> tuple[Route, str | None]:
    """The route for `tier`, moved up when `need` tokens do not fit its model (None: no check),
    and why it moved."""
    chosen = tiers[tier]
    if need is None:
        return Route(chosen.provider, chosen.model, tier=tier, reason="tier"), None
    for t in TIERS[TIERS.index(tier):]:
        r = tiers[t]
        window = catalog.context_window(r.model)
        if window is None or need <= window:
            if t == tier:
                return Route(r.provider, r.model, tier=t, reason="tier"), None
            window = catalog.context_window(chosen.model)
            return (Route(r.provider, r.model, tier=t, reason="context window"),
                    f"~{need} tokens do not fit {chosen} ({window}); moved up to {t}")
    return (Route(chosen.provider, chosen.model, tier=tier, reason="tier"),
            f"~{need} tokens fit no tier's context window; kept {tier}")


def price(catalog: Catalog, model: str | None, requested: str | None, tokens: int, out: int) -> dict:
    """`{cost, baseline, saving?}`: the estimated USD of the routed model and of the one the
    client asked for, for `tokens` in and `out` out."""
    cost = catalog.cost(model, input_tokens=tokens, output_tokens=out)
    baseline = catalog.cost(requested, input_tokens=tokens, output_tokens=out)
    got = {"cost": None if cost is None else round(cost, 6),
           "baseline": None if baseline is None else round(baseline, 6)}
    if cost is not None and baseline:
        got["saving"] = f"{(1 - cost / baseline) * 100:.0f}%"
    return got
