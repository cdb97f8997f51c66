"""Upstream adapters, by `kind`. The engine builds one per `providers:` entry at load time."""
from __future__ import annotations

from lynkr.config import LoadedConfig
from lynkr.config.registry import PROVIDER_KINDS as KINDS
from lynkr.config.registry import provider_class
from lynkr.providers.base import Provider
from lynkr.providers.pool import pool_members

__all__ = ["Provider", "KINDS", "provider_class", "build_providers"]

def _enabled(conf: dict) -> bool:
    v = conf.get("enabled", True)
    if isinstance(v, str):
        return v.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(v)


def referenced_providers(data: dict) -> set[str]:
    """Provider names the pipeline can route to: tiers, `models:` routes, and any stage's `to:`.
    Only these must have their key and URL; the default pipeline declares every Lynkr provider
    and a fresh machine sets none of their variables."""
    targets: list = list((data.get("tiers") or {}).values())
    targets += [m.get("route") for m in (data.get("models") or {}).values() if isinstance(m, dict)]
    for st in data.get("stages") or []:
        to = (st.get("with") or {}).get("to") if isinstance(st, dict) and st.get("enabled") is not False else None
        targets += to if isinstance(to, list) else [to]
    return {t.partition(":")[0] for t in targets if isinstance(t, str) and ":" in t}


def build_providers(cfg: LoadedConfig, errors: list | None = None) -> dict[str, Provider]:
    """The pipeline's providers. A problem is a ConfigError; with `errors` given, every provider's
    problems are appended there instead (`lynkr validate` reports them all) and the rest are built."""
    out: dict[str, Provider] = {}
    found: list = []
    used = referenced_providers(cfg.data)
    for name, conf in (cfg.data.get("providers") or {}).items():
        if not _enabled(conf):
            continue
        kind = conf["kind"]
        if kind not in KINDS:
            found.append(cfg.error(f"provider kind '{kind}' is not implemented yet", ("providers", name, "kind")))
            continue
        cls = provider_class(kind)
        if isinstance(conf.get("api_key"), list) or "api_keys" in conf:
            # A pool of keys: adapters' checks read `api_key` as "is there a key" (the first one).
            members = pool_members(conf)
            conf = {**conf, "api_key": members[0] if members else "", "api_keys": members}
        problems = cls.check(name, conf) if name in used else []
        found += [cfg.error(message, ("providers", name, key) if key in conf else ("providers", name))
                  for key, message in problems]
        if problems:
            continue
        out[name] = cls(name, conf)
        out[name].models = cfg.data.get("models") or {}
    if found and errors is None:
        raise found[0]
    (errors if errors is not None else []).extend(found)
    return out
