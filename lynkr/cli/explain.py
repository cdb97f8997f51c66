"""`lynkr explain`: run a request through a pipeline without calling any upstream."""
from __future__ import annotations

import json
from pathlib import Path

import orjson

from lynkr.config import load_config, redacted
from lynkr.engine.pipeline import build_pipeline
from lynkr.exchange import Exchange

__all__ = ["explain", "format_report", "load_request_file"]


def load_request_file(path: str) -> tuple[str, dict, dict]:
    """(path, headers, body) from a fixture `{path, headers, body}` or a bare request body."""
    data = orjson.loads(Path(path).read_bytes())
    if isinstance(data, dict) and "body" in data and isinstance(data.get("body"), dict):
        return data.get("path") or "/v1/messages", data.get("headers") or {}, data["body"]
    if not isinstance(data, dict):
        raise ValueError("a request file holds a JSON object")
    return "/v1/messages", {}, data


def protocol_for(path: str):
    from lynkr.wire import anthropic
    p = path.split("?")[0]
    try:
        if p.endswith("/chat/completions"):
            from lynkr.wire import openai_chat
            return openai_chat
        if p.endswith("/responses"):
            from lynkr.wire import openai_responses
            return openai_responses
    except ImportError:
        pass
    return anthropic


async def explain(pipeline_path: str, request_path: str, against: list[str] | None = None) -> dict:
    cfg = load_config(pipeline_path)
    pipeline = build_pipeline(cfg, dry_run=True)
    try:
        path, headers, body = load_request_file(request_path)
        proto = protocol_for(path)
        canonical = proto.to_canonical(body)
        x = Exchange.new(proto.CLIENT, canonical, original=body,
                         headers={k.lower(): v for k, v in headers.items() if k.lower() not in ("x-api-key", "authorization")})
        before = orjson.dumps(x.request)
        judged = judge_against(cfg.data, x.request, against) if against else None
        await pipeline.explain(x)
        after = orjson.dumps(x.request)
        from lynkr.kit.tokens import count_request
        return {
            "pipeline": cfg.name,
            "hash": cfg.hash,
            "plan": pipeline.plan.describe(),
            "stages": [{"id": e.stage_id, "uses": e.uses, "outcome": e.outcome, "duration_us": e.duration_us,
                        "detail": e.detail} for e in x.events],
            "off": {sid: {"uses": uses, "why": why} for sid, (uses, why) in pipeline.plan.off.items()},
            "vars": {k: v for k, v in x.vars.items() if not k.startswith("_")},
            "route": str(x.route) if x.route else None,
            # What would be sent: a provider:* route resolved to the client's model or the provider's default.
            "model": x.vars.get("upstream_model") or (x.route.model if x.route else None),
            "response": None if x.response is None else x.response.source,
            "request_changed": before != after,
            "tokens_client": count_request(x.baseline),
            "tokens_upstream": count_request(x.request),
            "config": redacted(cfg.data),
            "against": judged,
        }
    finally:
        await pipeline.aclose()


def judge_against(config: dict, request: dict, cached: list[str]) -> dict:
    """Whether the semantic cache would serve, for this request, an answer stored for each of
    `cached` (questions), and if not which rule refused it on which tokens; with the first
    `semantic_cache` stage's options, or the defaults when the pipeline has none."""
    from lynkr.cache.decide import DEFAULT_GENERAL_THRESHOLD, DEFAULT_THRESHOLD, judge
    from lynkr.cache.scope import split_prompt
    from lynkr.kit.embed import get_embedder
    opts = next((s.get("with") or {} for s in config.get("stages") or []
                 if isinstance(s, dict) and s.get("uses") == "semantic_cache"), {})
    question, _context = split_prompt(request)
    threshold = float(opts.get("threshold", DEFAULT_THRESHOLD))
    embedder = get_embedder(opts.get("model_path"), opts.get("model") or None)
    return {"question": question, "results": judge(
        embedder, question, cached, threshold=threshold,
        general_threshold=max(threshold, float(opts.get("general_threshold", DEFAULT_GENERAL_THRESHOLD))),
        use_guard=opts.get("guard", True), max_tokens=int(opts.get("embed_tokens", 128)))}


def format_against(judged: dict) -> list[str]:
    lines = ["", f"against stored questions (this request's question: {judged['question'][:80]!r}):"]
    for j in judged["results"]:
        why = {"served": "its answer would be served",
               "under_threshold": f"under the threshold {j['threshold']}",
               "refused": f"refused: {j['reason']}"}[j["verdict"]]
        lines.append(f"  {j['similarity']:.3f}  {j['cached'][:60]!r}: {why}")
        if j["verdict"] != "refused" and j["guard"]:
            lines.append(f"         the guard would also refuse it: {j['guard']}")
    return lines


def format_report(r: dict) -> str:
    lines = [f"pipeline {r['pipeline']} ({r['hash']})", "", "plan:"]
    lines += ["  " + s for s in r["plan"]]
    lines += ["", "stages:"]
    breakdowns = []
    for s in r["stages"]:
        shown = s["detail"]
        if isinstance(shown, dict) and isinstance(shown.get("dimensions"), dict):
            # A score breakdown reads better as a table below than as one JSON line.
            breakdowns.append((s["id"], shown))
            shown = {k: v for k, v in shown.items() if k != "dimensions"}
        detail = f"  {json.dumps(shown, default=str)}" if shown else ""
        lines.append(f"  {s['id']:<16} {s['uses']:<16} {s['outcome']:<12} {s['duration_us']:>7} µs{detail}")
    for sid, off in r.get("off", {}).items():
        lines.append(f"  {sid:<16} {off['uses']:<16} {'off':<12} {'':>10}  turned off by {off['why']}")
    for stage_id, d in breakdowns:
        lines += ["", f"score ({stage_id}): {d.get('score')} → {d.get('tier')}  ({d.get('reason')})"]
        dims = sorted(d["dimensions"].items(), key=lambda kv: -abs(kv[1].get("points", 0)))
        lines += [f"  {name:<13} {p.get('points', 0):>+6.1f}  {p.get('why', '')}" for name, p in dims]
    interesting = {k: v for k, v in r["vars"].items() if k not in ("path",)}
    if interesting:
        lines += ["", "vars:"] + [f"  {k}: {json.dumps(v, default=str)}" for k, v in interesting.items()]
    v = r["vars"]
    route = r["route"] or "(none)"
    if r["route"] and r.get("model") and r["route"].endswith(":*"):
        route = f"{r['route'][:-1]}{r['model']}"
        route += f"  ({v['model_mapped']})" if v.get("model_mapped") else "  (the client's model)"
    if v.get("tier") and r["route"]:
        route += f"  (tier {v['tier']})"
    if v.get("cost_estimate") is not None or v.get("baseline_cost_estimate") is not None:
        def usd(c):
            return "unpriced" if c is None else f"${c:.4f}"
        asked = next((s["detail"]["baseline"].get("model") for s in r["stages"]
                      if isinstance(s["detail"], dict) and isinstance(s["detail"].get("baseline"), dict)), None)
        route += (f"  est. {usd(v.get('cost_estimate'))} vs {usd(v.get('baseline_cost_estimate'))}"
                  f" for {asked or 'the requested model'}")
    lines += ["", f"route: {route}",
              f"tokens: client sent {r['tokens_client']}, would send upstream {r['tokens_upstream']}"
              f" ({r['tokens_client'] - r['tokens_upstream']:+d} saved)" if r["tokens_client"] else "tokens: n/a"]
    if r["response"]:
        lines.append(f"answered by: {r['response']}")
    if r.get("against"):
        lines += format_against(r["against"])
    return "\n".join(lines)
