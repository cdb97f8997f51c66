"""The model catalogue: prices per million tokens and context windows.

    from lynkr.kit.catalog import load_catalog, price, context_window
    cat = load_catalog(cfg.data.get("models"))      # built-in table + the pipeline's `models:`
    cat.price("openrouter:anthropic/claude-sonnet-4.5")
    # {'input': 3.0, 'output': 15.0, 'cache_read': 0.3, 'cache_write': 3.75, 'context_window': 200000, ...,
    #  'model': 'claude-sonnet-4-5'}
    cat.cost("claude-sonnet-4-5", input_tokens=12000, output_tokens=800)   # USD, or None if unpriced
    price("gpt-4o-mini"); context_window("qwen2.5-coder:7b")                # built-in table only

Names are matched loosely because the same model goes by many names: a `provider:` prefix,
an OpenRouter `vendor/` prefix, Bedrock's `anthropic.`/`-v1:0`, a date suffix, an Ollama
`:tag`, and dots or dashes in versions (`claude-sonnet-4.5` = `claude-sonnet-4-5`). An unknown
version of a known family (`claude-opus-5-5`) is priced as the family's current model, so a
client's newest model id still gets a baseline cost; the answer says so (`"match": "family"`).
"""
from __future__ import annotations

import re
from importlib import resources
from typing import Mapping

import orjson

from lynkr.kit.cache import Bounded, remembered

__all__ = ["Catalog", "load_catalog", "price", "context_window", "normalize"]

PRICE_KEYS = ("input", "output", "cache_read", "cache_write", "cache_write_1h")

_DATE = re.compile(r"(?:-\d{8}|@\d{8}|-\d{4}-\d{2}-\d{2}|-latest)$")
_BEDROCK_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")
_DOTTED_VERSION = re.compile(r"(?<=\d)\.(?=\d)")
_OLLAMA_TAG = re.compile(r"^(?:latest|\d|q\d|fp\d|instruct|text|base)")
_VENDOR_PREFIX = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21|deepseek|openai|qwen)\.")


def normalize(model: str) -> str:
    """A name's catalogue key: `openrouter:anthropic/claude-sonnet-4.5` → `claude-sonnet-4-5`."""
    name = model.strip().lower()
    # A leading `provider:` (the pipeline's target syntax) is dropped, but an Ollama tag is not a
    # model: in `gpt-oss:20b` or `phi4:latest` the part after the colon is a size or a label.
    head, sep, rest = name.partition(":")
    if sep and rest and "/" not in head and "." not in head and not _OLLAMA_TAG.match(rest):
        name = rest
    name = name.rsplit("/", 1)[-1]
    name = _BEDROCK_SUFFIX.sub("", name)
    name = _VENDOR_PREFIX.sub("", name)          # Bedrock/Vertex: us.anthropic.claude-…
    name = name.split(":", 1)[0]                 # Ollama tag (:7b, :latest)
    name = _DATE.sub("", name)
    name = name.replace("@", "-")
    return _DOTTED_VERSION.sub("-", name)


class Catalog:
    """Model facts by name; `entries` maps catalogue keys to dicts of prices and limits."""

    def __init__(self, entries: Mapping[str, dict], aliases: Mapping[str, str] | None = None,
                 exact: Mapping[str, dict] | None = None):
        self.entries = dict(entries)
        self.aliases = dict(aliases or {})
        # Names from the pipeline's `models:` match as written first (a team's own alias such
        # as `fast` must not be normalised into something else).
        self.exact = dict(exact or {})
        self._keys_by_length = sorted(self.entries, key=len, reverse=True)
        # Every request prices the same few models: each name is looked up once (the loose
        # matching runs several regexes and can scan every key). Callers must not change the dicts.
        self._found: Bounded[str, tuple] = Bounded(max_entries=256)      # name -> (entry or None,)
        self._prices: Bounded[str, tuple] = Bounded(max_entries=256)

    def lookup(self, model: str | None) -> dict | None:
        """The entry for `model` with `model` (the key used) and `match` (exact|normalized|prefix|family)."""
        return _once(self._found, model, self._lookup)

    def _lookup(self, model: str) -> dict | None:
        if model in self.exact:
            return {**self.exact[model], "model": model, "match": "exact"}
        key = normalize(model)
        key = self.aliases.get(key, key)
        entry = self.entries.get(key)
        if entry is not None:
            return {**entry, "model": key, "match": "exact" if key == model else "normalized"}
        # A longer, dated or suffixed name of a listed model: gpt-4o-2024-08-06-preview → gpt-4o.
        for k in self._keys_by_length:
            if key.startswith(k) and key[len(k):len(k) + 1] in ("-", "_"):
                e = self.entries[k]
                return {**e, "model": k, "match": "family" if e.get("family") else "prefix"}
        return None

    def price(self, model: str | None) -> dict | None:
        """`{input, output, cache_read, cache_write, cache_write_1h}` in USD per million tokens (plus
        facts), or None. cache_write is the 5-minute write; without a 1-hour price it is the same."""
        return _once(self._prices, model, self._price)

    def _price(self, model: str) -> dict | None:
        e = self.lookup(model)
        if e is None or not any(k in e for k in PRICE_KEYS):
            return None
        out = dict(e)
        out.setdefault("cache_read", out.get("input"))
        out.setdefault("cache_write", out.get("input"))
        out.setdefault("cache_write_1h", out.get("cache_write"))
        return out

    def context_window(self, model: str | None) -> int | None:
        e = self.lookup(model)
        cw = e.get("context_window") if e else None
        return int(cw) if cw else None

    def max_output(self, model: str | None) -> int | None:
        e = self.lookup(model)
        mo = e.get("max_output") if e else None
        return int(mo) if mo else None

    def cost(self, model: str | None, input_tokens: float = 0, output_tokens: float = 0,
             cache_read: float = 0, cache_write: float = 0, cache_write_1h: float = 0) -> float | None:
        """USD for a call; None when the model has no price. `input_tokens` excludes cached ones;
        `cache_write` is all writes, `cache_write_1h` the 1-hour part of them."""
        p = self.price(model)
        if p is None:
            return None
        return (input_tokens * (p.get("input") or 0) + output_tokens * (p.get("output") or 0)
                + cache_read * (p.get("cache_read") or 0) + (cache_write - cache_write_1h) * (p.get("cache_write") or 0)
                + cache_write_1h * (p.get("cache_write_1h") or 0)) / 1e6


def _once(table: Bounded, model, compute) -> dict | None:
    """`compute(model)` once per name (None included) for a Catalog's tables."""
    if not model or not isinstance(model, str):
        return None
    found = table.get(model)
    if found is None:
        found = table.put(model, (compute(model),))
    return found[0]


@remembered(max_entries=1)
def _builtin() -> tuple[dict, dict]:
    data = orjson.loads(resources.files("lynkr").joinpath("data/models.json").read_bytes())
    return data["models"], data.get("aliases", {})


def load_catalog(pipeline_models: Mapping[str, dict] | None = None) -> Catalog:
    """The built-in catalogue with a pipeline's `models:` table laid over it.

    A `models:` entry overrides the fields it names: `{claude-sonnet-4-5: {input: 2.5}}` changes
    one price and keeps the rest. An entry whose name is not in the catalogue is added as is.
    """
    builtin, aliases = _builtin()
    base = Catalog(builtin, aliases)
    entries = dict(builtin)
    exact: dict[str, dict] = {}
    for name, facts in (pipeline_models or {}).items():
        if not isinstance(facts, dict):
            continue
        known = base.lookup(name)
        merged = {**({k: v for k, v in known.items() if k not in ("model", "match", "family")} if known else {}),
                  **facts}
        exact[name] = merged
        entries[normalize(name)] = merged
    return Catalog(entries, aliases, exact)


def price(model: str | None) -> dict | None:
    """Prices of `model` from the built-in catalogue (use `load_catalog(models).price` for a pipeline's)."""
    return _default().price(model)


def context_window(model: str | None) -> int | None:
    return _default().context_window(model)


@remembered(max_entries=1)
def _default() -> Catalog:
    return load_catalog(None)
