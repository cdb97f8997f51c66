"""A fleet on this machine: three `lynkr run` replicas (separate processes, own ports and state
folders, one pipeline file) behind Debian's HAProxy, round robin, health-checked on
`/health/ready`, with an upstream double that knows which replica called it. What a team that
outgrew one machine relies on (docs/scale-out.md): every replica serves, and a replica killed
mid-load costs only the requests it had in flight, then rejoins when it is back."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid

import aiohttp
import pytest

from tests.helpers.fleet import KEYS, Fleet
from tests.helpers.haproxy import haproxy_binary


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    if haproxy_binary() is None:
        pytest.skip("haproxy is not installed (.ci/setup.d/32-haproxy.sh installs Debian's package)")
    with Fleet(tmp_path_factory.mktemp("fleet")) as f:
        yield f


def body(text: str) -> dict:
    return {"model": "claude-fleet", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}


async def ask(s: aiohttp.ClientSession, url: str, text: str, *, key: str = "load",
              headers: dict | None = None) -> tuple[int, dict, str]:
    """(status, headers, the answer's text or the error body) for one Anthropic request."""
    async with s.post(url + "/v1/messages", json=body(text),
                      headers={"x-api-key": KEYS[key], **(headers or {})}) as r:
        raw = await r.read()
        if r.status != 200:
            return r.status, dict(r.headers), raw.decode(errors="replace")
        msg = await r.json(content_type=None)
        return 200, dict(r.headers), "".join(b.get("text", "") for b in msg["content"])


class Load:
    """`clients` clients, each sending one request after another through `url` until stopped.
    Every prompt is new, so every request is a miss that reaches a replica's provider call."""

    def __init__(self, s: aiohttp.ClientSession, url: str, clients: int, headers: dict | None = None):
        self.s, self.url, self.clients, self.headers = s, url, clients, headers or {}
        self.ok = 0
        self.failures: list[tuple[int, str]] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._n = itertools.count()

    @property
    def done(self) -> int:
        return self.ok + len(self.failures)

    async def _client(self, c: int) -> None:
        while not self._stop.is_set():
            text = f"Load request {next(self._n)} from client {c}: {uuid.uuid4().hex}"
            try:
                status, _, out = await ask(self.s, self.url, text, headers=self.headers)
            except aiohttp.ClientError as e:
                status, out = 0, repr(e)
            if status == 200:
                self.ok += 1
            else:
                self.failures.append((status, out[:300]))

    async def until(self, n: int, timeout: float = 60) -> None:
        """Until `n` responses in all (a bound for a hang, not a speed test)."""
        async with asyncio.timeout(timeout):
            while self.done < n:
                await asyncio.sleep(0.02)

    async def __aenter__(self) -> "Load":
        self._tasks = [asyncio.create_task(self._client(c)) for c in range(self.clients)]
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def eventually(cond, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def client():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def test_round_robin_reaches_every_replica(fleet):
    """Requests through the balancer are served by all three replicas, each calling the
    upstream with its own identity; every one is answered."""
    before = fleet.upstream.stats()["arrived"]
    async with client() as s:
        results = [await ask(s, fleet.lb.url, f"Spread request {i}: {uuid.uuid4().hex}") for i in range(9)]
    assert [r[0] for r in results] == [200] * 9, results
    after = fleet.upstream.stats()["arrived"]
    for r in fleet.replicas:
        assert after.get(r.name, 0) > before.get(r.name, 0), (r.name, before, after)


async def test_a_killed_replica_costs_only_its_in_flight_requests_and_rejoins(fleet):
    """SIGKILL of one replica's whole process tree under load from six clients: the only failed
    requests are ones that replica had in flight (counted exactly: the upstream holds every client's
    request at the moment of the kill); every request after it is served by the other two, since
    HAProxy retries only connections that failed before a request was sent. Restarted on its port,
    the replica passes HAProxy's health checks and serves again."""
    victim = fleet.replicas[1]
    async with client() as s:
        async with Load(s, fleet.lb.url, clients=6, headers={"x-lynkr-cache": "bypass"}) as load:
            await load.until(30)
            # Freeze the load: every client's one request waits at the upstream, so what the victim
            # has in flight is exactly what waits there under its name.
            in_flight = 0
            for _ in range(20):
                fleet.upstream.hold()
                await eventually(lambda: sum(fleet.upstream.stats()["waiting"].values()) == load.clients,
                                 "the clients' requests did not all reach the upstream")
                in_flight = fleet.upstream.stats()["waiting"].get(victim.name, 0)
                if in_flight:
                    break
                fleet.upstream.release()      # round robin left the victim idle this time; again
                await load.until(load.done + load.clients)
            assert in_flight >= 1, "the victim never had a request in flight"
            served_before = load.ok
            victim.kill()
            fleet.upstream.release()
            await asyncio.to_thread(fleet.lb.wait_state, victim.name, "DOWN")
            await load.until(load.done + 60)
        assert load.ok > served_before + 50
        assert len(load.failures) <= in_flight, (in_flight, load.failures)
        # HAProxy answers 502, or closes a keep-alive client connection as the replica did.
        assert all(status in (502, 0) for status, _ in load.failures), load.failures

        arrived = fleet.upstream.stats()["arrived"].get(victim.name, 0)
        victim.start()
        await asyncio.to_thread(victim.wait_ready)
        await asyncio.to_thread(fleet.lb.wait_state, victim.name, "UP")
        results = [await ask(s, fleet.lb.url, f"After the restart {i}: {uuid.uuid4().hex}") for i in range(9)]
    assert [r[0] for r in results] == [200] * 9, results
    assert fleet.upstream.stats()["arrived"].get(victim.name, 0) > arrived     # it serves again
