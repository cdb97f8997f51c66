"""kill -9 during load, then restart: the telemetry file opens, at most the last unflushed batch is
lost, and the cache store opens (and still answers what it stored before the crash).

The bound (docs/reliability.md): telemetry rows are queued in memory and written in one transaction
per batch, every `telemetry.flush_interval_s` or `batch_size` rows, whichever comes first. A crash
loses the requests finished since the last committed batch — never a committed one, never the file.
"""
import asyncio
import itertools

import aiohttp

from tests.helpers.reliability_faults import FaultyUpstream
from tests.helpers.reliability_util import BODY, LynkrProcess, start_upstream, telemetry_rows

PIPE = """
version: 1
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: exact, uses: exact_cache, with: {{path: "{cache}"}}}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}, needs: [exact]}}
telemetry: {{path: "{telemetry}", flush_interval_s: 0.2, batch_size: 20}}
state_dir: "{state}"
"""

_n = itertools.count()


def _body(i: int | None = None, stream: bool = False) -> dict:
    i = next(_n) if i is None else i
    return {**BODY, "model": "ok", "stream": stream, "messages": [{"role": "user", "content": f"question {i}"}]}


async def _ask(s: aiohttp.ClientSession, url: str, body: dict) -> aiohttp.ClientResponse:
    async with s.post(url + "/v1/messages", json=body) as r:
        await r.read()
        return r


async def _rows_reach(path, n: int, timeout: float = 20) -> int:
    async with asyncio.timeout(timeout):
        while True:
            rows = await asyncio.to_thread(telemetry_rows, path)
            if rows >= n:
                return rows
            await asyncio.sleep(0.05)


async def test_kill_9_loses_at_most_the_unflushed_batch_and_state_reopens(tmp_path):
    up = FaultyUpstream()
    up_runner = await start_upstream(up)
    tele = tmp_path / "telemetry.duckdb"
    pipe = tmp_path / "pipeline.yaml"
    pipe.write_text(PIPE.format(url=up.url, cache=tmp_path / "cache.duckdb", telemetry=tele, state=tmp_path / "state"))
    procs = []

    def start() -> LynkrProcess:
        p = LynkrProcess(pipe)
        procs.append(p)
        return p

    try:
        # 1. Thirty answers, all flushed; then five more and an immediate kill -9.
        lynkr = start()
        await lynkr.ready()
        async with aiohttp.ClientSession() as s:
            for i in range(30):
                assert (await _ask(s, lynkr.url, _body(i))).status == 200
            assert await _rows_reach(tele, 30) == 30
            for i in range(30, 35):
                assert (await _ask(s, lynkr.url, _body(i))).status == 200
        lynkr.kill()

        lynkr = start()
        await lynkr.ready()                       # the telemetry file and the cache store open
        after_first = await asyncio.to_thread(telemetry_rows, tele)
        assert 30 <= after_first <= 35, after_first

        # 2. Kill -9 in the middle of concurrent load (streams and not).
        completed = 0
        stop = asyncio.Event()

        async def client(k: int):
            nonlocal completed
            async with aiohttp.ClientSession() as s:
                while not stop.is_set():
                    try:
                        r = await _ask(s, lynkr.url, _body(stream=k % 2 == 0))
                        completed += r.status == 200
                    except aiohttp.ClientError:
                        return          # the process is gone
        clients = [asyncio.create_task(client(k)) for k in range(6)]
        while completed < 60:
            await asyncio.sleep(0.01)
        lynkr.kill()
        stop.set()
        await asyncio.gather(*clients)

        lynkr = start()
        await lynkr.ready()
        rows = await asyncio.to_thread(telemetry_rows, tele)
        # Nothing committed before is lost, and no row is invented.
        assert after_first <= rows <= after_first + completed + 6, (after_first, rows, completed)
        async with aiohttp.ClientSession() as s:
            # The cache store reopened with what it held before both crashes.
            r = await _ask(s, lynkr.url, _body(3))
            assert r.status == 200 and r.headers.get("x-lynkr-cache") == "exact"
            # And the restarted process records again.
            assert (await _ask(s, lynkr.url, _body())).status == 200
        await _rows_reach(tele, rows + 2)
    finally:
        for p in procs:
            p.kill()
        await up_runner.cleanup()
