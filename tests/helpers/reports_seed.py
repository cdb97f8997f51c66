"""A telemetry file built from known requests, for report, dashboard and export tests.

`seed(path)` writes the rows of KNOWN (below) through the writer's own insert path; the
expected report numbers in the tests are worked out by hand from these rows and PRICES.
"""
from __future__ import annotations

import datetime as dt

from lynkr.telemetry.writer import write_file

# USD per million tokens, as a pipeline's `models:` gives them.
PRICES = {
    "big-model": {"input": 10.0, "output": 30.0, "cache_read": 1.0, "cache_write": 12.5},
    "small-model": {"input": 1.0, "output": 2.0},
}

PIPELINE_YAML = """
version: 1
name: p1
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:9"}
  local: {kind: ollama, base_url: "http://127.0.0.1:9"}
models:
  big-model: {input: 10, output: 30, cache_read: 1, cache_write: 12.5}
  small-model: {input: 1, output: 2}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
telemetry: {path: "%s"}
dashboard: {enabled: %s}
server: {admin_token: "%s"}
"""


def _req(id, *, requested="big-model", provider="up", model="big-model", tc=0, tu=0, ui=None, uo=None,
         status=200, cache="miss", tier=None, latency=100.0, upstream=90.0, overhead=10.0, days_ago=0,
         pipeline="p1", hash="h1", error=None, score=None):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return {
        "id": id, "ts": now - dt.timedelta(days=days_ago, seconds=60), "pipeline": pipeline, "pipeline_hash": hash,
        "client": "anthropic", "user_agent": "test", "session": None, "requested_model": requested,
        "provider": provider, "model": model, "tier": tier, "score": score, "cache": cache, "fallback": None,
        "stream": False, "status": status, "error": error, "latency_ms": latency, "ttfb_ms": latency / 2,
        "upstream_ms": upstream, "overhead_ms": overhead, "tokens_client": tc, "tokens_upstream": tu,
        "usage_input": ui, "usage_output": uo, "usage_cache_read": None, "usage_cache_write": None, "worker": 0,
    }


def _ev(req, stage_id, uses, outcome="ok", before=None, after=None, duration_us=50):
    return {"request_id": req["id"], "ts": req["ts"], "pipeline": req["pipeline"], "pipeline_hash": req["pipeline_hash"],
            "stage_id": stage_id, "uses": uses, "phase": "run", "outcome": outcome, "duration_us": duration_us,
            "tokens_before": before, "tokens_after": after, "detail": None}


def known_rows():
    r1 = _req("r1", tc=1000, tu=800, ui=800, uo=100, tier="COMPLEX", score=0.8, latency=100, upstream=90, overhead=10)
    r2 = _req("r2", model="small-model", tc=500, tu=500, ui=500, uo=50, tier="SIMPLE", score=0.1,
              latency=200, upstream=180, overhead=20)
    r3 = _req("r3", provider=None, model=None, tc=2000, tu=0, uo=40, cache="exact", latency=5, upstream=None, overhead=5)
    r4 = _req("r4", tc=300, tu=300, status=529, error="529 overloaded_error: Overloaded", latency=300, upstream=290,
              overhead=10)
    r5 = _req("r5", provider="local", model="qwen2.5-coder:7b", tc=400, tu=400, ui=400, uo=60, tier="MEDIUM", score=0.4,
              latency=400, upstream=380, overhead=20, hash="h2")
    r6 = _req("r6", requested="small-model", model="small-model", tc=100, tu=100, ui=100, uo=10, days_ago=10,
              latency=500, upstream=450, overhead=50)
    reqs = [r1, r2, r3, r4, r5, r6]
    evs = [
        _ev(r1, "cache", "exact_cache"), _ev(r1, "trim", "trim", before=1000, after=800), _ev(r1, "call", "provider_call", "responded"),
        _ev(r2, "cache", "exact_cache"), _ev(r2, "trim", "trim", before=500, after=500), _ev(r2, "call", "provider_call", "responded"),
        _ev(r3, "cache", "exact_cache", "responded"),
        _ev(r4, "cache", "exact_cache"), _ev(r4, "call", "provider_call", "error"),
        _ev(r5, "cache", "exact_cache"), _ev(r5, "call", "provider_call", "responded"),
        _ev(r6, "cache", "exact_cache"), _ev(r6, "call", "provider_call", "responded"),
    ]
    return reqs, evs


def seed(path, reqs=None, evs=None) -> str:
    if reqs is None:
        reqs, evs = known_rows()
    write_file(str(path), reqs, evs or [])
    return str(path)


def write_pipeline(dir, db, *, dashboard=True, token="s3cret") -> str:
    p = dir / "pipeline.yaml"
    p.write_text(PIPELINE_YAML % (db, "true" if dashboard else "false", token))
    return str(p)
