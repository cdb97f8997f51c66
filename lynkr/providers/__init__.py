"""Upstream adapters, by `kind`. The engine builds one per `providers:` entry at load time."""
from __future__ import annotations

import importlib

from ..config import LoadedConfig
from .base import Provider

__all__ = ["Provider", "KINDS", "provider_class", "build_providers"]

# kind -> "module:Class"; imported lazily so a pipeline pays only for the kinds it uses.
KINDS: dict[str, str] = {
    "anthropic": "lynkr.providers.anthropic:AnthropicProvider",
}


def provider_class(kind: str) -> type[Provider]:
    mod, _, cls = KINDS[kind].partition(":")
    return getattr(importlib.import_module(mod), cls)


def _enabled(conf: dict) -> bool:
    v = conf.get("enabled", True)
    if isinstance(v, str):
        return v.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(v)


def build_providers(cfg: LoadedConfig) -> dict[str, Provider]:
    out: dict[str, Provider] = {}
    for name, conf in (cfg.data.get("providers") or {}).items():
        if not _enabled(conf):
            continue
        kind = conf["kind"]
        if kind not in KINDS:
            raise cfg.error(f"provider kind '{kind}' is not implemented yet", ("providers", name, "kind"))
        cls = provider_class(kind)
        for key, message in cls.check(name, conf):
            raise cfg.error(message, ("providers", name, key) if key in conf else ("providers", name))
        out[name] = cls(name, conf)
    return out
