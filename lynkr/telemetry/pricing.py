"""Prices for the reports: the model catalogue merged with the pipeline's `models:`.

Costs are never stored in telemetry. A report registers a `prices` table in its own DuckDB
connection at query time (one row per model the telemetry names), so fixing a price in the
pipeline or the catalogue re-prices all history.

Prices are USD per million tokens: `input`, `output`, `cache_read`, `cache_write` (a 5-minute
cache write) and `cache_write_1h` (a 1-hour write; Anthropic charges 2x input for it, 1.25x for
a 5-minute one; a price without it charges 1-hour writes as 5-minute ones).
Lookup order for a (provider, model) pair: the pipeline's `models:` entry for
`provider:model`, then for `model`; then the catalogue (`lynkr.kit.catalog`, owned by the
routing code); then the small fallback table below. A local provider (kind `ollama`) is free.
Names are matched loosely: `anthropic/claude-sonnet-4.5`, `claude-sonnet-4-5-20250929` and
`claude-sonnet-4-5` are one model.
"""
from __future__ import annotations

import logging
import re
from typing import Iterable, Mapping

__all__ = ["PriceTable", "PRICE_FIELDS", "normalize_model", "usd_of"]

log = logging.getLogger("lynkr.telemetry")

PRICE_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")

_DATE_SUFFIX = re.compile(r"[-@]?(20\d\d-?\d\d-?\d\d|latest)$")


def normalize_model(name: str) -> str:
    """A comparable form of a model name: lower case, no provider/vendor prefix, no date, dots as dashes."""
    n = str(name).strip().lower()
    n = n.rsplit("/", 1)[-1]                 # openrouter's anthropic/claude-…, bedrock's us.anthropic… below
    n = re.sub(r"^(us|eu|apac)\.", "", n)
    n = re.sub(r"^anthropic\.", "", n)
    n = re.sub(r"-v\d+(:\d+)?$", "", n)      # bedrock's -v1:0
    n = _DATE_SUFFIX.sub("", n)
    return n.replace(".", "-").replace("_", "-")


def _as_price(p) -> dict | None:
    """A price from the catalogue or a `models:` entry, whatever its shape (dict or object)."""
    if p is None:
        return None
    get = p.get if isinstance(p, Mapping) else (lambda k, d=None: getattr(p, k, d))
    if get("input") is None and get("output") is None:
        return None
    inp = float(get("input") or 0.0)
    out = {"input": inp, "output": float(get("output") or 0.0)}
    # Without a cache price, a cached token costs what an input token does (no discount assumed).
    out["cache_read"] = float(get("cache_read")) if get("cache_read") is not None else inp
    out["cache_write"] = float(get("cache_write")) if get("cache_write") is not None else inp
    out["cache_write_1h"] = float(get("cache_write_1h")) if get("cache_write_1h") is not None else out["cache_write"]
    return out


class PriceTable:
    """Resolve (provider, model) to a price. `pipeline` is the pipeline's config dict (or None)."""

    def __init__(self, pipeline: Mapping | None = None):
        pipeline = pipeline or {}
        models = pipeline.get("models") or {}
        self.overrides: dict[str, dict] = {}
        for name, entry in models.items():
            price = _as_price(entry) if isinstance(entry, Mapping) else None
            if price is not None:
                self.overrides[str(name)] = price
        self.free_providers = {name for name, p in (pipeline.get("providers") or {}).items()
                               if isinstance(p, Mapping) and p.get("kind") == "ollama"}
        self._catalog = _load_catalog(models)
        self._fallback = {normalize_model(k): v for k, v in FALLBACK_PRICES.items()}
        self._norm_overrides = {normalize_model(k): v for k, v in self.overrides.items() if ":" not in k}

    def price(self, model: str | None, provider: str | None = None) -> tuple[dict | None, str]:
        """(price or None, where it came from: pipeline | catalog | fallback | local)."""
        if not model:
            return None, ""
        if provider:
            hit = self.overrides.get(f"{provider}:{model}")
            if hit:
                return hit, "pipeline"
        hit = self.overrides.get(model) or _lookup(self._norm_overrides, model)
        if hit:
            return hit, "pipeline"
        if provider and (provider in self.free_providers or provider == "ollama"):
            return {f: 0.0 for f in PRICE_FIELDS}, "local"
        if self._catalog is not None:
            try:
                hit = _as_price(self._catalog.price(model))
            except Exception:   # a catalogue miss may raise; the fallback still applies
                hit = None
            if hit:
                return hit, "catalog"
        hit = _lookup(self._fallback, model)
        if hit:
            return dict(hit), "fallback"
        return None, ""

    def rows(self, called: Iterable[tuple[str | None, str | None]], requested: Iterable[str | None]) -> list[tuple]:
        """Rows for the report's `prices` table: (provider, model, input, output, cache_read, cache_write,
        cache_write_1h, source).

        `provider` is NULL for a price by model name alone (how a client's requested model is priced)."""
        out: dict[tuple, tuple] = {}
        for provider, model in called:
            p, src = self.price(model, provider)
            if p is not None and model:
                out[(provider, model)] = (provider, model, *(p[f] for f in PRICE_FIELDS), src)
        for model in requested:
            p, src = self.price(model)
            if p is not None and model:
                out[(None, model)] = (None, model, *(p[f] for f in PRICE_FIELDS), src)
        return list(out.values())


def _lookup(table: Mapping[str, dict], model: str) -> dict | None:
    """Exact normalised name, else the longest known name the model starts with."""
    n = normalize_model(model)
    if n in table:
        return table[n]
    best = max((k for k in table if n.startswith(k + "-") or n.startswith(k)), key=len, default=None)
    return table[best] if best else None


def _load_catalog(models: Mapping):
    try:
        from lynkr.kit.catalog import load_catalog
    except ImportError:
        return None
    try:
        return load_catalog(models)
    except Exception as e:  # reports still run on the fallback prices
        log.warning("model catalogue failed to load (%s); using fallback prices", e)
        return None


# Used only when lynkr.kit.catalog is not installed or does not know a model. USD per million tokens,
# list prices; a pipeline's `models:` overrides any of them.
FALLBACK_PRICES: dict[str, dict] = {
    "claude-opus-4-5":   {"input": 5.0,  "output": 25.0, "cache_read": 0.5,   "cache_write": 6.25, "cache_write_1h": 10},
    "claude-opus-4":     {"input": 15.0, "output": 75.0, "cache_read": 1.5,   "cache_write": 18.75, "cache_write_1h": 30},
    "claude-sonnet-4":   {"input": 3.0,  "output": 15.0, "cache_read": 0.3,   "cache_write": 3.75, "cache_write_1h": 6},
    "claude-3-7-sonnet": {"input": 3.0,  "output": 15.0, "cache_read": 0.3,   "cache_write": 3.75, "cache_write_1h": 6},
    "claude-3-5-sonnet": {"input": 3.0,  "output": 15.0, "cache_read": 0.3,   "cache_write": 3.75, "cache_write_1h": 6},
    "claude-haiku-4-5":  {"input": 1.0,  "output": 5.0,  "cache_read": 0.1,   "cache_write": 1.25, "cache_write_1h": 2},
    "claude-3-5-haiku":  {"input": 0.8,  "output": 4.0,  "cache_read": 0.08,  "cache_write": 1.0, "cache_write_1h": 1.6},
    "gpt-5":             {"input": 1.25, "output": 10.0, "cache_read": 0.125, "cache_write": 1.25},
    "gpt-5-mini":        {"input": 0.25, "output": 2.0,  "cache_read": 0.025, "cache_write": 0.25},
    "gpt-4-1":           {"input": 2.0,  "output": 8.0,  "cache_read": 0.5,   "cache_write": 2.0},
    "gpt-4-1-mini":      {"input": 0.4,  "output": 1.6,  "cache_read": 0.1,   "cache_write": 0.4},
    "gpt-4o":            {"input": 2.5,  "output": 10.0, "cache_read": 1.25,  "cache_write": 2.5},
    "gpt-4o-mini":       {"input": 0.15, "output": 0.6,  "cache_read": 0.075, "cache_write": 0.15},
    "gemini-2-5-pro":    {"input": 1.25, "output": 10.0, "cache_read": 0.31,  "cache_write": 1.25},
    "gemini-2-5-flash":  {"input": 0.3,  "output": 2.5,  "cache_read": 0.075, "cache_write": 0.3},
}


def usd_of(usage: Mapping | None, price: Mapping | None) -> float:
    """USD of one answer's provider-reported usage (Anthropic-shaped keys) at `price` (per million
    tokens): cache reads and writes at their own prices, 1-hour writes at theirs."""
    if not usage or not price:
        return 0.0
    def n(src, k) -> float:
        v = src.get(k) if isinstance(src, Mapping) else None
        return v if isinstance(v, (int, float)) else 0
    one_hour = n(usage.get("cache_creation"), "ephemeral_1h_input_tokens")
    writes = n(usage, "cache_creation_input_tokens")
    total = (n(usage, "input_tokens") * price["input"] + n(usage, "output_tokens") * price["output"]
             + n(usage, "cache_read_input_tokens") * price["cache_read"]
             + max(0, writes - one_hour) * price["cache_write"] + one_hour * price["cache_write_1h"])
    return total / 1_000_000
