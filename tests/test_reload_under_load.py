"""100 pipeline swaps — valid and invalid, alternating — during steady load: no request fails, every
retired pipeline is closed once its last request is done, and no stage or provider resource leaks."""
import asyncio

import aiohttp

from tests.helpers.reliability_util import BODY, lynkr_app, start_upstream
from tests.helpers.reliability_faults import FaultyUpstream

PROBE = '''
from lynkr.stage import Stage


class Probe(Stage):
    """Counts live instances in the engine's shared dict (one per pipeline load)."""
    name = "probe"
    options_schema = {"type": "object", "additionalProperties": False,
                      "properties": {"generation": {"type": "integer", "description": "which swap built it"}}}

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        c = ctx.shared.setdefault("probe_counts", {"built": 0, "closed": 0})
        c["built"] += 1
        self.counts = c
        self.closed = False

    async def run(self, x):
        x.vars["generation"] = self.options["generation"]

    async def aclose(self):
        if not self.closed:
            self.closed = True
            self.counts["closed"] += 1
'''

VALID = """
version: 1
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: probe, uses: ./probe.py:Probe, with: {{generation: {gen}}}}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}, needs: [probe]}}
"""

# Invalid in two ways that fail at different points: a schema error (nothing built) and a cycle
# (stages built, then the plan fails — they must be closed, not leaked).
INVALID = [
    """
version: 1
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: probe, uses: ./probe.py:Probe, with: {{generation: "not a number {gen}"}}}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
""",
    """
version: 1
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: probe, uses: ./probe.py:Probe, with: {{generation: {gen}}}, needs: [call]}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}, needs: [probe]}}
""",
]

SWAPS = 100
CLIENTS = 6


async def test_100_swaps_under_load_fail_nothing_and_leak_nothing(tmp_path):
    up = FaultyUpstream()
    up_runner = await start_upstream(up)
    (tmp_path / "probe.py").write_text(PROBE)
    path = tmp_path / "pipeline.yaml"
    path.write_text(VALID.format(url=up.url, gen=0))
    try:
        async with lynkr_app(path, tmp_path) as (app, url):
            engine = app["engine"]
            served: list[object] = [engine.current]
            engine.listeners.append(lambda event, p: served.append(p) if event == "reload" else None)
            stop = asyncio.Event()
            results: list[int] = []
            failures: list[str] = []

            async def client(i: int):
                async with aiohttp.ClientSession() as s:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        # A mix of JSON answers and streams, some slow enough to straddle a swap.
                        model = "trickle" if (i + n) % 4 == 0 else "ok"
                        body = {**BODY, "model": model, "stream": (i + n) % 2 == 0}
                        try:
                            async with s.post(url + "/v1/messages", json=body) as r:
                                data = await r.read()
                                results.append(r.status)
                                if r.status != 200 or (body["stream"] and b"event: message_stop" not in data):
                                    failures.append(f"{r.status} {data[:200]!r}")
                        except aiohttp.ClientError as e:
                            failures.append(repr(e))

            clients = [asyncio.create_task(client(i)) for i in range(CLIENTS)]
            ok = bad = 0
            for gen in range(1, SWAPS + 1):
                if gen % 2:
                    path.write_text(VALID.format(url=up.url, gen=gen))
                else:
                    path.write_text(INVALID[(gen // 2) % 2].format(url=up.url, gen=gen))
                if await engine.reload():
                    ok += 1
                else:
                    bad += 1
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.gather(*clients)

            assert failures == []
            assert len(results) >= 50              # the load really ran across the swaps
            assert (ok, bad) == (SWAPS // 2, SWAPS // 2)
            assert engine.reloads == SWAPS // 2 and engine.reload_failures == SWAPS // 2
            assert engine.current.stages["probe"].options["generation"] == SWAPS - 1

            # Let the last `after` hooks run, then: every pipeline but the current one is closed,
            # with its provider sessions; every stage ever built (valid or not) is closed but one.
            async with asyncio.timeout(10):
                while engine.finishing or any(not p.closed for p in served[:-1]):
                    await asyncio.sleep(0.02)
            assert len(served) == SWAPS // 2 + 1
            for p in served[:-1]:
                assert p.closed and p.in_flight == 0
                for prov in p.providers.values():
                    assert not prov.session_open
            counts = engine.shared["probe_counts"]
            assert counts["built"] - counts["closed"] == 1, counts
    finally:
        await up_runner.cleanup()
