"""`lynkr replay SESSION_DIR --pipeline A.yaml [--against B.yaml]`: what a pipeline does to recorded
traffic, before it ships.

Each recorded request (`req_NNN.json`: path, headers, body — the ../shared/fixtures format) goes
through the pipeline in order, as one client session, with the upstream stubbed (the plan runs in
dry-run mode: provider_call resolves its route and stops). Per request and in total it prints the
tokens the client sent, the tokens that would go upstream, what each stage saved, and
prefix-stability violations: on turn n+1, the tools, the system prompt and every message up to
turn n's last must be byte-identical to what turn n sent upstream, or the provider's prompt cache
misses. `cache_control` markers are ignored (they are not part of the cached bytes), and a change
the client itself made to its history is reported apart from ours.

Per request it also prints the share of the input tokens the provider would read from its
prompt cache (`cache`): the body the routed provider would send is run through a model of that
provider's cache (lynkr/providers/cache_model.py: breakpoints, the 20-block lookback, minimum
lengths and ttls for Anthropic, Bedrock and OpenRouter serving Claude; automatic prefix caching for
the others), one cache per session, turns a second apart.

`--as chat|responses|anthropic` replays each session as that client protocol would have sent it
(an OpenAI Chat client such as Cursor or Cline, Codex's Responses, Claude Code's Messages; such a
client sets no cache markers), to see what the pipeline does for clients you have no recording of.

`--against B.yaml` runs the same sessions through a second pipeline and prints the difference —
how a team reviews a pipeline change in a pull request. `--json` prints the whole report.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

from lynkr.cli import command, print_report

__all__ = ["replay_sessions", "find_sessions", "prefix_violations", "cmd_replay", "as_client", "CLIENT_PATHS"]

CLIENT_PATHS = {"anthropic": "/v1/messages", "chat": "/v1/chat/completions", "responses": "/v1/responses"}


def find_sessions(root: str | Path) -> list[Path]:
    """`root` itself when it holds req_*.json files, else every folder below it that does."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    if any(root.glob("req_*.json")):
        return [root]
    found = sorted({p.parent for p in root.rglob("req_*.json")})
    if not found:
        raise ValueError(f"no req_*.json files under {root}")
    return found


def _session_of(headers: dict, body: dict) -> str | None:
    from lynkr.server.handler import session_of
    return session_of({k.lower(): v for k, v in headers.items()}, body)


def as_client(path: str, body: dict, to: str | None) -> tuple[str, dict]:
    """A recorded request as client protocol `to` would have sent it: (path, body)."""
    from lynkr.cli.explain import protocol_for
    from lynkr.wire import openai_chat, openai_responses
    from lynkr.wire.canonical import for_anthropic_upstream

    proto = protocol_for(path)
    if to is None or to == proto.CLIENT.replace("openai_", ""):
        return path, body
    canonical = proto.to_canonical(body)
    model = body.get("model") if isinstance(body, dict) else None
    if to == "anthropic":
        out = _without_cache_control(for_anthropic_upstream(canonical, proto.CLIENT))
    elif to == "chat":
        out = openai_chat.from_canonical(canonical, model)
    elif to == "responses":
        out = openai_responses.from_canonical(canonical, model)
    else:
        raise ValueError(f"--as {to}: expected one of {', '.join(CLIENT_PATHS)}")
    return CLIENT_PATHS[to], out


def _without_cache_control(value):
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def _parts(request: dict) -> tuple[bytes, bytes, list[bytes]]:
    r = _without_cache_control(request)
    return (orjson.dumps(r.get("tools") or []), orjson.dumps(r.get("system") or []),
            [orjson.dumps(m) for m in r.get("messages") or []])


def prefix_violations(prev: dict, cur: dict) -> list[str]:
    """Where `cur` stops repeating `prev` byte for byte (tools, system, then each earlier message)."""
    pt, ps, pm = _parts(prev)
    ct, cs, cm = _parts(cur)
    out = []
    if pt != ct:
        out.append("tools")
    if ps != cs:
        out.append("system")
    if len(cm) < len(pm):
        out.append(f"history shrank ({len(pm)} → {len(cm)} messages)")
    for i, (a, b) in enumerate(zip(pm, cm)):
        if a != b:
            out.append(f"message {i}")
            break
    return out


async def _replay_one(pipeline_path: str, sessions: list[Path], as_proto: str | None = None, inspect=None) -> dict:
    from lynkr.config import load_config
    from lynkr.engine.pipeline import build_pipeline
    from lynkr.exchange import Exchange
    from lynkr.cli.explain import load_request_file, protocol_for
    from lynkr.kit.tokens import count_request, count_text

    cfg = load_config(pipeline_path)
    pipeline = build_pipeline(cfg, dry_run=True)
    report = {"pipeline": cfg.name, "file": str(pipeline_path), "hash": cfg.hash, "sessions": []}
    caches: dict = {}
    try:
        for folder in sessions:
            rows = []
            prev_client = prev_up = None
            for req in sorted(folder.glob("req_*.json")):
                path, headers, body = load_request_file(str(req))
                path, body = as_client(path, body, as_proto)
                proto = protocol_for(path)
                canonical = proto.to_canonical(body)
                x = Exchange.new(proto.CLIENT, canonical, original=body, session=_session_of(headers, body),
                                 headers={k.lower(): v for k, v in headers.items()
                                          if k.lower() not in ("x-api-key", "authorization")})
                await pipeline.explain(x)
                cache = _cache_share(pipeline, x, caches, folder, len(rows))
                stages = {}
                for ev in x.events:
                    if ev.measure is not None:
                        before, after = (count_text(ev.measure[0]), count_text(ev.measure[1]))
                    elif ev.tokens_before is not None and ev.tokens_after is not None:
                        before, after = ev.tokens_before, ev.tokens_after
                    else:
                        continue
                    stages[ev.stage_id] = stages.get(ev.stage_id, 0) + before - after
                client_v = prefix_violations(prev_client, x.baseline) if prev_client is not None else []
                up_v = prefix_violations(prev_up, x.request) if prev_up is not None else []
                ours = [v for v in up_v if v not in client_v]
                rows.append({"request": req.name, "client_tokens": count_request(x.baseline),
                             "upstream_tokens": count_request(x.request), "stages": stages,
                             "violations": ours, "client_violations": client_v, "cache": cache,
                             "events": [{"id": e.stage_id, "outcome": e.outcome, "detail": e.detail} for e in x.events]})
                prev_client, prev_up = x.baseline, x.request
            report["sessions"].append({"session": str(folder), "requests": rows})
        if inspect is not None:
            inspect(pipeline)
    finally:
        await pipeline.aclose()
    report["total"] = _totals([r for s in report["sessions"] for r in s["requests"]])
    return report


def _cache_share(pipeline, x, caches: dict, folder, turn: int) -> dict | None:
    """What the routed provider's prompt cache would do with this turn's upstream body."""
    from lynkr.providers.cache_model import PromptCache, blocks_for
    from lynkr.providers.prompt_cache import rules_for

    provider = pipeline.providers.get(x.route.provider) if x.route else None
    if provider is None or not hasattr(provider, "upstream_body"):
        return None
    model = x.request.get("model") if x.route.model == "*" else x.route.model
    rules = rules_for(provider, model)
    key = (str(folder), provider.name)
    if key not in caches:
        caches[key] = (PromptCache.explicit(rules.min_tokens) if rules.explicit
                       else PromptCache.automatic(rules.min_tokens))
    try:
        body = provider.upstream_body(x, model)
    except Exception:       # a body the provider cannot build is the provider's error, not replay's
        return None
    u = caches[key].use(blocks_for(rules.markers, body), float(turn), seed=str(model))
    return {**u, "share": round(u["read"] / u["total"], 3) if u["total"] else 0.0}


def _totals(rows: list[dict]) -> dict:
    stages: dict[str, int] = {}
    for r in rows:
        for k, v in r["stages"].items():
            stages[k] = stages.get(k, 0) + v
    client = sum(r["client_tokens"] for r in rows)
    up = sum(r["upstream_tokens"] for r in rows)
    later = [r["cache"] for r in rows if r.get("cache")]
    read = sum(c["read"] for c in later)
    total = sum(c["total"] for c in later)
    return {"requests": len(rows), "client_tokens": client, "upstream_tokens": up,
            "saved_pct": round(100 * (client - up) / client, 1) if client else 0.0, "stages": stages,
            "violations": sum(1 for r in rows if r["violations"]),
            "cache_read_pct": round(100 * read / total, 1) if total else None}


def replay_sessions(root: str, pipeline: str, against: str | None = None, as_proto: str | None = None,
                    inspect=None) -> dict:
    """`lynkr replay`'s report; `inspect(pipeline)` is called with the replayed pipeline before it is
    closed (what a stage kept, e.g. the memories the `memory` stage learned)."""
    sessions = find_sessions(root)
    out = {"a": asyncio.run(_replay_one(pipeline, sessions, as_proto, inspect))}
    if against:
        out["b"] = asyncio.run(_replay_one(against, sessions, as_proto))
    return out


def _pct(client: int, up: int) -> str:
    return f"{100 * (client - up) / client:5.1f}%" if client else "   n/a"


def format_report(rep: dict) -> str:
    a, b = rep["a"], rep.get("b")
    lines = [f"pipeline A: {a['file']} ({a['pipeline']}, {a['hash']})"]
    if b:
        lines.append(f"pipeline B: {b['file']} ({b['pipeline']}, {b['hash']})")
    for si, sess in enumerate(a["sessions"]):
        lines += ["", f"session {sess['session']}"]
        if b:
            lines.append(f"  {'request':<14}{'client':>8}{'A up':>8}{'B up':>8}{'B−A':>8}  A violations / B violations")
            for ra, rb in zip(sess["requests"], b["sessions"][si]["requests"]):
                lines.append(f"  {ra['request']:<14}{ra['client_tokens']:>8}{ra['upstream_tokens']:>8}"
                             f"{rb['upstream_tokens']:>8}{rb['upstream_tokens'] - ra['upstream_tokens']:>+8}  "
                             f"{', '.join(ra['violations']) or '-'} / {', '.join(rb['violations']) or '-'}")
            continue
        lines.append(f"  {'request':<14}{'client':>8}{'upstream':>9}{'saved':>8}{'cache':>7}  "
                     f"per stage (tokens saved)   prefix")
        for r in sess["requests"]:
            per = " ".join(f"{k}:{v:+d}" for k, v in r["stages"].items()) or "-"
            v = ", ".join(r["violations"]) or "ok"
            if r["client_violations"]:
                v += f" (client changed: {', '.join(r['client_violations'])})"
            cache = f"{100 * r['cache']['share']:6.1f}%" if r.get("cache") else "    n/a"
            lines.append(f"  {r['request']:<14}{r['client_tokens']:>8}{r['upstream_tokens']:>9}"
                         f"{_pct(r['client_tokens'], r['upstream_tokens']):>8}{cache}  {per:<26} {v}")
    for label, rp in (("A", a), ("B", b)):
        if not rp:
            continue
        t = rp["total"]
        per = ", ".join(f"{k} {v:+d}" for k, v in t["stages"].items()) or "none"
        lines += ["", f"total {label}: {t['requests']} requests, client sent {t['client_tokens']} tokens, "
                      f"upstream {t['upstream_tokens']} ({t['saved_pct']}% saved); per stage: {per}; "
                      f"prefix violations: {t['violations']}; "
                      f"read from the provider's prompt cache: {t['cache_read_pct']}% of input"]
    if b:
        d = b["total"]["upstream_tokens"] - a["total"]["upstream_tokens"]
        lines.append(f"B − A: {d:+d} upstream tokens ({100 * d / max(1, a['total']['upstream_tokens']):+.1f}%), "
                     f"prefix violations {b['total']['violations'] - a['total']['violations']:+d}")
    return "\n".join(lines)


@command
def cmd_replay(args) -> int:
    """Replay recorded client requests through a pipeline (upstream stubbed): tokens, per-stage savings, prefix stability."""
    rep = print_report(args, lambda: replay_sessions(args.session_dir, args.pipeline, args.against, args.as_proto),
                       format_report)
    if rep is None:
        return 1
    violations = rep["a"]["total"]["violations"] + (rep["b"]["total"]["violations"] if "b" in rep else 0)
    return 2 if (args.strict and violations) else 0


def _configure(p) -> None:
    p.add_argument("session_dir", help="a folder of req_NNN.json files, or a folder of such folders")
    p.add_argument("--pipeline", required=True, help="the pipeline to replay through")
    p.add_argument("--against", help="a second pipeline to compare with")
    p.add_argument("--as", dest="as_proto", choices=sorted(CLIENT_PATHS),
                   help="replay each request as this client protocol would have sent it")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--strict", action="store_true", help="exit 2 when a prefix-stability violation is found (CI)")


cmd_replay.configure = _configure
