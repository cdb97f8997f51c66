"""What sharing state through Redis adds to a request: `pipelines/default.yaml` embedded
(`lynkr-default`) against the same file with `state: {redis: URL}` (`lynkr-redis`, a local
redis-server this run starts), the same number of processes each, measured in one run. Rounds are
paired — one request to each path in turn, round after round — so whatever else the machine does
hits both alike (benchmarks/ttfb_paired.py does the same for time to first byte).

    python -m benchmarks.fleet                              # 1000 rounds, small and cc62k bodies
    python -m benchmarks.fleet --rounds 2000 --workers 2 --bodies small

Every request is new (MARK replaced by the round number), so each one is what Redis costs on a
miss: the exact cache's GET, the semantic cache's XREAD, and after the answer its SET and XADD.
A repeat on the same replica is answered from the in-process LRU and never reaches Redis. Prints
p10/p50/p90 of the full response time per path and body, the added p50 (target: at most 1 ms,
docs/scale-out.md) and the median of the paired differences; then Redis's memory per stored answer
(`INFO memory` before and after, divided by the answers stored).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from .overhead import COMPANIONS, MARK, Proc, fake_upstream, start_path, workload_bodies

WARMUP = 30
PATHS = ("lynkr-default", "lynkr-redis")


async def paired(urls: dict[str, str], body: bytes, n: int, tag: str) -> dict[str, list[float]]:
    """Milliseconds from sending a request to its last byte, per path, `n` rounds after a warm-up."""
    out: dict[str, list[float]] = {k: [] for k in urls}
    sessions = {k: aiohttp.ClientSession() for k in urls}
    try:
        for i in range(n + WARMUP):
            data = body.replace(MARK.encode(), f"{tag}-{i}".encode())
            for k, url in urls.items():
                t = time.perf_counter()
                async with sessions[k].post(url + "/v1/messages", data=data,
                                            headers={"content-type": "application/json", "x-api-key": "bench"}) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{k}: HTTP {r.status}")
                if i >= WARMUP:
                    out[k].append((time.perf_counter() - t) * 1000)
    finally:
        for s in sessions.values():
            await s.close()
    return out


def redis_used_memory(url: str) -> int:
    import redis
    return int(redis.Redis.from_url(url).info("memory")["used_memory"])


def report(body: str, res: dict[str, list[float]]) -> None:
    base, shared = (res[p] for p in PATHS)
    diffs = sorted(b - a for a, b in zip(base, shared))
    p50 = {k: statistics.median(v) for k, v in res.items()}
    for k, v in res.items():
        s = sorted(v)
        n = len(s)
        added = f"{p50[k] - p50[PATHS[0]]:+.2f} ms" if k != PATHS[0] else ""
        print(f"{body:<8}{k:<16}{s[n // 10]:>8.2f}{p50[k]:>8.2f}{s[int(n * .9)]:>8.2f}   {added}")
    print(f"{body:<8}{'paired':<16}{'':>24}   median of the {len(diffs)} paired differences: "
          f"{statistics.median(diffs):+.2f} ms")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=1, help="`lynkr run --workers N` for both paths")
    ap.add_argument("--bodies", default="small,cc62k", help="from tests/helpers/bench_bodies.py")
    args = ap.parse_args(argv)
    bodies = workload_bodies()
    names = [b for b in args.bodies.split(",") if b in bodies]
    tmp = Path(tempfile.mkdtemp(prefix="lynkr-fleet-bench-"))
    upstream = fake_upstream()
    procs: dict[str, Proc] = {}
    try:
        upstream.wait_ready()
        for name in PATHS:
            proc = start_path(name, upstream.url, tmp, args.workers)
            if proc is None:
                print(f"{name}: cannot run (see above)", file=sys.stderr)
                return 1
            procs[name] = proc
            proc.wait_ready(timeout=300)
        redis_url = next(p.url for p in COMPANIONS if p.name == "redis") + "/0"
        print(f"{args.rounds} paired rounds after {WARMUP} warm-up, one request to each path per round, "
              f"--workers {args.workers}\n")
        print(f"{'body':<8}{'path':<16}{'p10 ms':>8}{'p50 ms':>8}{'p90 ms':>8}   added p50 vs {PATHS[0]}")
        stored = 0
        before = redis_used_memory(redis_url)
        for body in names:
            res = asyncio.run(paired({k: p.url for k, p in procs.items()}, bodies[body], args.rounds, body))
            report(body, res)
            stored += args.rounds + WARMUP
        procs["lynkr-redis"].settle()          # the after hooks' SET and XADD are done
        grown = redis_used_memory(redis_url) - before
        print(f"\nredis used_memory grew {grown / 1024:.0f} KiB for {stored} stored answers "
              f"(exact + semantic): {grown / stored:.0f} bytes per answer")
    finally:
        for p in procs.values():
            p.stop()
        for p in COMPANIONS:
            p.stop()
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
