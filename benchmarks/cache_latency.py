"""End-to-end latency of a semantic cache hit over HTTP, next to a request the fast fake upstream
answers, in one run.

    python benchmarks/cache_latency.py                 # 300 requests of each kind
    python benchmarks/cache_latency.py -n 1000 --json

Starts the fake upstream (tests/helpers/fake_upstream.py) and `lynkr run` with a pipeline of
semantic_cache + provider_call as separate processes, then sends sequential requests from this
one over keep-alive HTTP:

- hit:      a rephrased question the cache answers (embedding + search + guard + replay);
- upstream: the same question with `x-lynkr-cache: bypass`, answered by the fake upstream;
- miss:     a new question: embedding, no hit, then the upstream (the cost a miss adds).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.overhead import Proc, free_port  # noqa: E402

PIPELINE = """
version: 1
name: cache-latency
state_dir: "{state}"
server: {{host: 127.0.0.1, port: {port}}}
providers:
  up: {{kind: anthropic, base_url: "{upstream}"}}
stages:
  - {{id: cache, uses: semantic_cache}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
telemetry: {{path: "{state}/telemetry.duckdb"}}
"""

STORED = "What is the difference between TCP and UDP?"
REPHRASED = ["How does TCP differ from UDP?", "What's the difference between TCP and UDP?",
             "What is the difference between UDP and TCP?", "Difference between TCP and UDP?"]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def run(n: int, url: str) -> dict:
    import aiohttp

    def body(q):
        return {"model": "claude-bench", "max_tokens": 64, "messages": [{"role": "user", "content": q}]}

    out = {"hit": [], "upstream": [], "miss": []}
    async with aiohttp.ClientSession() as s:
        async def post(q, headers=None, expect=None):
            t0 = time.perf_counter()
            async with s.post(url + "/v1/messages", json=body(q), headers=headers or {}) as r:
                await r.read()
                dt = (time.perf_counter() - t0) * 1000
                if r.status != 200:
                    raise RuntimeError(f"status {r.status}")
                if expect is not None and r.headers.get("x-lynkr-cache") != expect:
                    raise RuntimeError(f"expected x-lynkr-cache={expect} for {q!r}, got {r.headers.get('x-lynkr-cache')}")
                return dt

        await post(STORED)                 # miss: stored by the after hook
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                await post(REPHRASED[0], expect="semantic")
                break
            except RuntimeError:
                continue
        for i in range(20):                # warm-up of every path
            await post(REPHRASED[i % len(REPHRASED)], expect="semantic")
            await post(STORED, headers={"x-lynkr-cache": "bypass"})
        for i in range(n):
            out["hit"].append(await post(REPHRASED[i % len(REPHRASED)], expect="semantic"))
            out["upstream"].append(await post(REPHRASED[i % len(REPHRASED)], headers={"x-lynkr-cache": "bypass"}))
            out["miss"].append(await post(f"How do I configure service number {i} of fleet {n}?", expect=None))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=300, help="requests of each kind")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    up_port, port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as state:
        pipe = Path(state) / "pipeline.yaml"
        pipe.write_text(PIPELINE.format(state=state, port=port, upstream=f"http://127.0.0.1:{up_port}"))
        env = {"PYTHONPATH": str(ROOT)}
        shared = ROOT.parent / "shared"
        if (shared / "models").is_dir():
            env.setdefault("LYNKR_EMBED_MODEL_PATH", os.environ.get("LYNKR_EMBED_MODEL_PATH")
                           or str(shared / "models" / "all-MiniLM-L6-v2-onnx"))
            env.setdefault("TIKTOKEN_CACHE_DIR", os.environ.get("TIKTOKEN_CACHE_DIR") or str(shared / "tiktoken"))
        upstream = Proc("fake upstream", [sys.executable, "-m", "tests.helpers.fake_upstream", "--port", str(up_port)],
                        f"http://127.0.0.1:{up_port}", env)
        lynkr = Proc("lynkr", [sys.executable, "-m", "lynkr.cli", "run", str(pipe), "--no-reload", "--log-level", "warning"],
                     f"http://127.0.0.1:{port}", env)
        try:
            upstream.wait_ready()
            lynkr.wait_ready(120)
            times = asyncio.run(run(args.n, f"http://127.0.0.1:{port}"))
        finally:
            lynkr.stop()
            upstream.stop()
        stage_ms = stage_durations(str(Path(state) / "telemetry.duckdb"))
    summary = {k: {"n": len(v), "p50_ms": round(statistics.median(v), 2), "p99_ms": round(pct(v, 99), 2),
                   "mean_ms": round(statistics.fmean(v), 2)} for k, v in times.items()}
    summary["stage_only"] = stage_ms
    try:
        summary["load_average_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    labels = {"hit": "semantic cache hit", "upstream": "fake upstream (cache bypassed)",
              "miss": "cache miss + fake upstream"}
    print(f"{'sequential HTTP requests, keep-alive':<40}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for k in labels:
        r = summary[k]
        print(f"{labels[k]:<40}{r['n']:>6}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['mean_ms']:>9.2f}")
    for k, r in (stage_ms or {}).items():
        print(f"  inside the stage, {k:<29}{r['n']:>6}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}")
    if "load_average_1m" in summary:
        print(f"load average (1 min) at the end: {summary['load_average_1m']} on {os.cpu_count()} cores")
    return 0


def stage_durations(db: str) -> dict:
    """The semantic_cache stage's own time per hit and miss (embedding, search, guard), from telemetry."""
    try:
        from lynkr.telemetry.reports import run_query
        _, rows = run_query(db, "SELECT json_extract_string(detail, '$.result') AS result, count(*), "
                                "median(duration_us) / 1000.0, quantile_cont(duration_us, 0.99) / 1000.0 "
                                "FROM stage_events WHERE stage_id = 'cache' AND phase = 'run' GROUP BY 1")
    except Exception as e:  # telemetry is a bonus here
        print(f"(no stage timings: {e})", file=sys.stderr)
        return {}
    return {r[0]: {"n": r[1], "p50_ms": round(r[2], 2), "p99_ms": round(r[3], 2)} for r in rows if r[0]}


if __name__ == "__main__":
    sys.exit(main())
