"""Overload measurement (not a test): a real `lynkr run` with `shed.max_in_flight` N in front of an
upstream that takes 1 s per answer, hit by C concurrent clients at once. Prints how many were served
and shed, how fast a refusal came back, and what /health/ready said meanwhile.

    python -m tests.helpers.reliability_overload [N=64] [C=400]
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.helpers.reliability_faults import FaultyUpstream
from tests.helpers.reliability_util import BODY, LynkrProcess, start_upstream

PIPE = """
version: 1
server: {{shed: {{max_in_flight: {n}}}}}
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
telemetry: {{path: "{tmp}/t.duckdb"}}
"""


async def main(n: int, c: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    up = FaultyUpstream()
    runner = await start_upstream(up)
    pipe = tmp / "pipeline.yaml"
    pipe.write_text(PIPE.format(n=n, url=up.url, tmp=tmp))
    lynkr = LynkrProcess(pipe)
    try:
        await lynkr.ready()
        ready_codes: list[int] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            async def one():
                t = time.perf_counter()
                async with s.post(lynkr.url + "/v1/messages", json={**BODY, "model": "slow"}) as r:
                    await r.read()
                    return r.status, (time.perf_counter() - t) * 1000, r.headers.get("retry-after")

            async def probe():
                await asyncio.sleep(0.3)
                async with s.get(lynkr.url + "/health/ready") as r:
                    ready_codes.append(r.status)

            t0 = time.perf_counter()
            results, _ = await asyncio.gather(asyncio.gather(*(one() for _ in range(c))), probe())
            wall = time.perf_counter() - t0
            async with s.get(lynkr.url + "/health/ready") as r:
                ready_codes.append(r.status)
        ok = [ms for st, ms, _ in results if st == 200]
        shed = sorted(ms for st, ms, _ in results if st == 529)
        other = [st for st, _, _ in results if st not in (200, 529)]
        print(f"max_in_flight={n} clients={c}: {len(ok)} served (p50 {statistics.median(ok):.0f} ms), "
              f"{len(shed)} shed with 529" + (f" (p50 {statistics.median(shed):.1f} ms, "
                                             f"p99 {shed[int(len(shed) * 0.99) - 1]:.1f} ms, retry-after "
                                             f"{results[[st for st, _, _ in results].index(529)][2]})" if shed else "")
              + f", other statuses {other}; wall {wall:.2f} s; /health/ready during: {ready_codes[0]}, after: {ready_codes[1]}")
    finally:
        lynkr.kill()
        await runner.cleanup()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [64, 400][len(args):])))
