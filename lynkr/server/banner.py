"""The first screen of `lynkr run`: what is served, where each route goes and with which key,
what to give Claude Code, Codex and Cursor, where the dashboard and the telemetry are.

Keys are never printed: a set key shows as its length and last four characters.
"""
from __future__ import annotations

import os

from lynkr import __version__
from lynkr.config.loader import TIERS
from lynkr.providers.pool import mask as last4, pool_members
from lynkr.storage.lake import redact

__all__ = ["first_screen", "first_screen_data", "routes_of", "mask", "key_status"]

_LOCAL_KINDS = {"demo": "no key needed (built-in demo model)", "ollama": "no key needed (local)"}


def mask(secret: str) -> str:
    return f"set (…{secret[-4:]}, {len(secret)} chars)" if len(secret) >= 12 else "set"


def routes_of(data: dict) -> list[tuple[str, str]]:
    """(what, provider:model) for every way a request can be routed, in the order they apply."""
    out: list[tuple[str, str]] = []
    tiers = {k: v for k, v in (data.get("tiers") or {}).items() if v}
    if len(tiers) == len(TIERS):
        out += [(f"tier {t}", tiers[t]) for t in TIERS]
    for name, m in (data.get("models") or {}).items():
        if isinstance(m, dict) and m.get("route"):
            out.append((f"model {name}", m["route"]))
    for st in data.get("stages") or ():
        to = (st.get("with") or {}).get("to") if isinstance(st, dict) else None
        what = {"provider_call": "otherwise" if out else "every request", "fallback": "on failure"}.get(
            st.get("uses"), f"stage {st.get('id')}") if isinstance(st, dict) else ""
        for t in (to if isinstance(to, list) else [to]):
            if isinstance(t, str) and ":" in t:
                out.append((what, t))
    return out


def key_status(name: str, conf: dict) -> str:
    """How a provider gets its key, as the first screen says it (masked; a pool counted)."""
    kind = conf.get("kind", "")
    if kind in _LOCAL_KINDS:
        return _LOCAL_KINDS[kind]
    keys = pool_members(conf)
    if len(keys) > 1:
        return f"{len(keys)} keys (a pool): " + ", ".join(last4(k) for k in keys)
    key = (keys[0] if keys else None) or conf.get("access_key_id")
    if key:
        return "key " + mask(str(key))
    if kind in ("anthropic", "azure_anthropic") and conf.get("forward_client_auth", True):
        return "no key set: each client's own key or login is passed through"
    return "no key set"


def _model_note(provider, target: str) -> str:
    model = target.partition(":")[2]
    if model != "*" or provider is None:
        return ""
    pattern, default = provider.family_pattern(), provider.config.get("default_model") or provider.default_model
    if pattern and default:
        return f"  (the client's model if it matches '{pattern}…', else {default})"
    return "  (the client's model)"


def first_screen_data(engine, host: str, port: int, workers: int) -> dict:
    p = engine.current
    data = p.config
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
    providers = data.get("providers") or {}
    routes = []
    for what, target in routes_of(data):
        name = target.partition(":")[0]
        routes.append({"route": what, "target": target, "key": key_status(name, providers.get(name) or {}),
                       "note": _model_note(p.providers.get(name), target).strip()})
    token = os.environ.get("LYNKR_ADMIN_TOKEN") or (data.get("server") or {}).get("admin_token")
    dash = (data.get("dashboard") or {}).get("enabled", False)
    return {
        "version": __version__, "pipeline": p.name, "hash": p.hash, "file": p.file, "url": base,
        "workers": workers, "routes": routes,
        # A folder's other pipelines (lynkr.engine.folder), reached by key or by /p/NAME/.
        "others": [q.name for q in engine.serving() if q is not p],
        "dashboard": (f"{base}/dashboard?token={token}" if dash and token else
                      "on, but needs an admin token: set LYNKR_ADMIN_TOKEN" if dash else
                      "off (add `dashboard: {enabled: true}` to the pipeline and set LYNKR_ADMIN_TOKEN)"),
        "telemetry": _telemetry(engine.writer),
        "state": engine.shared["state"].status() if engine.shared.get("state") is not None else None,
        "clients": {
            "claude_code": f"ANTHROPIC_BASE_URL={base} claude",
            "codex": (f"codex -m gpt-5-codex -c model_provider=lynkr -c 'model_providers.lynkr={{name=\"Lynkr\", "
                      f"base_url=\"{base}/v1\", wire_api=\"responses\"}}'"),
            "cursor": f"OpenAI base URL {base}/v1 (Cursor: Settings → Models → Override OpenAI Base URL)",
        },
    }


def _telemetry(writer) -> str | None:
    lake = getattr(writer, "lake", None)
    if lake:       # the catalog without its password, and where the files go
        return f"lake {redact(lake['catalog'])} → {lake['data_path']}"
    return getattr(writer, "path", None)


def first_screen(engine, host: str, port: int, workers: int) -> str:
    d = first_screen_data(engine, host, port, workers)
    lines = [f"lynkr {d['version']}  pipeline '{d['pipeline']}' ({d['hash']})  from {d['file']}",
             f"  serving      {d['url']}  ({d['workers']} worker{'s' if d['workers'] != 1 else ''})", "  routes"]
    width = max((len(r["route"]) for r in d["routes"]), default=0)
    for r in d["routes"]:
        lines.append(f"    {r['route']:<{width}}  → {r['target']}  [{r['key']}]{('  ' + r['note']) if r['note'] else ''}")
    if not d["routes"]:
        lines.append("    (none: requests need a `models:` entry or a provider_call `to:`)")
    if d["others"]:
        lines.append(f"  also serving {', '.join(d['others'])}  (a key's pipeline:, or {d['url']}/p/NAME/…)")
    c = d["clients"]
    lines += ["  point your tools here",
              f"    Claude Code  {c['claude_code']}",
              f"    Codex        {c['codex']}",
              f"    Cursor       {c['cursor']}",
              f"  dashboard    {d['dashboard']}",
              f"  telemetry    {d['telemetry'] or 'off'}" + (f"  (lynkr report savings{_db_arg(d['telemetry'], d['file'])})"
                                                            if d["telemetry"] else ""),
              "  one line per request below (--log-format json, --quiet); Ctrl-C drains and stops"]
    st = d["state"]
    if st is not None:
        lines.insert(-1, f"  state        shared through {st['url']}" + (
            "" if st["up"] else "  (not answering: local state until it does)"))
    return "\n".join(lines)


def _db_arg(path: str, pipeline: str) -> str:
    if path.startswith("lake "):
        return f" --config {pipeline}"
    default = os.environ.get("LYNKR_TELEMETRY") or ".lynkr/telemetry.duckdb"
    return "" if os.path.normpath(path) == os.path.normpath(default) else f" --db {path}"
