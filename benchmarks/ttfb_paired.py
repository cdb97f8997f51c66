"""Streaming time to first byte, paired: one streamed request to each path in turn, round after
round, so whatever else the machine does hits every path alike. The overhead benchmark measures
each path at a different time, and on a busy 2-core machine the bare proxy's own TTFB moves by
more than the difference being measured.

    python -m benchmarks.ttfb_paired                         # bare vs lynkr-passthrough, 400 rounds
    python -m benchmarks.ttfb_paired --paths bare,lynkr-passthrough,lynkr-default --rounds 300
    python -m benchmarks.ttfb_paired --paths lynkr-passthrough,lynkr-textcalls --body stream-tools
        # what recovering tool calls written as text adds to an answer with none in it
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from .overhead import MARK, Proc, fake_upstream, start_path, workload_bodies

WARMUP = 20


async def rounds(urls: dict[str, str], body: bytes, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in urls}
    sessions = {k: aiohttp.ClientSession() for k in urls}
    try:
        for i in range(n + WARMUP):
            data = body.replace(MARK.encode(), b"paired-%d" % i)
            for k, url in urls.items():
                t = time.perf_counter()
                async with sessions[k].post(url + "/v1/messages", data=data,
                                            headers={"content-type": "application/json", "x-api-key": "bench"}) as r:
                    await r.content.readany()
                    first = time.perf_counter()
                    await r.read()
                if i >= WARMUP:
                    out[k].append((first - t) * 1000)
    finally:
        for s in sessions.values():
            await s.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", default="bare,lynkr-passthrough")
    ap.add_argument("--rounds", type=int, default=400)
    ap.add_argument("--body", default="stream", choices=["stream", "stream-tools"])
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="lynkr-ttfb-"))
    upstream = fake_upstream()
    procs: dict[str, Proc] = {}
    try:
        upstream.wait_ready()
        for name in args.paths.split(","):
            procs[name] = start_path(name, upstream.url, tmp, 1)
            procs[name].wait_ready(timeout=300)
        res = asyncio.run(rounds({k: p.url for k, p in procs.items()}, workload_bodies()[args.body], args.rounds))
    finally:
        for p in procs.values():
            p.stop()
        upstream.stop()
    first = next(iter(res))
    base = sorted(res[first])[len(res[first]) // 2]
    print(f"{args.rounds} rounds, one streamed request (500 chunks) to each path per round\n")
    print(f"{'path':<22}{'p10 ms':>8}{'p50 ms':>8}{'p90 ms':>8}   added p50 vs {first}")
    for k, v in res.items():
        v.sort()
        n = len(v)
        added = f"{v[n // 2] - base:+.2f} ms"
        print(f"{k:<22}{v[n // 10]:>8.2f}{v[n // 2]:>8.2f}{v[int(n * .9)]:>8.2f}   {added}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
