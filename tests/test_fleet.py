"""A fleet on this machine, as docs/scale-out.md draws it: `redis-server` and PostgreSQL from
Debian's packages on free ports, three `lynkr run` replicas (separate processes, own ports and
state folders, one pipeline file with `state: {redis: …}` and `telemetry: {lake: …}`) behind
Debian's HAProxy, round robin, health-checked on `/health/ready`, and an upstream double that
knows which replica called it. The tests run in file order against one fleet: what is shared
first, the lake's count of everything answered so far, then the failures (a replica killed, Redis
stopped) that the count would not survive exactly."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
import uuid

import aiohttp
import pytest

from tests.helpers.fleet import KEYS, Fleet
from tests.helpers.haproxy import haproxy_binary
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.redis_server import RedisServer

# Requests the replicas answered (200) across the module: what the lake must count. Refusals at
# the door (429 for the rpm limit) never reach the pipeline or telemetry; the fleet's requests
# are otherwise all answered.
ANSWERED = {"n": 0}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    if haproxy_binary() is None:
        pytest.skip("haproxy is not installed (.ci/setup.d/32-haproxy.sh installs Debian's package)")
    tmp = tmp_path_factory.mktemp("fleet")
    with RedisServer() as redis, PostgresServer() as pg:
        lake = {"catalog": pg.catalog, "data_path": str(tmp / "lake")}
        # A burst on a busy 2-core CI machine lags a replica's loop past the 0.5 s default of
        # state.timeout_s, which would degrade it to local counters: this tests sharing.
        with Fleet(tmp, redis=redis.url, lake=lake, redis_timeout_s=2.0) as f:
            f.redis_server = redis
            yield f


def body(text: str) -> dict:
    return {"model": "claude-fleet", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}


async def ask(s: aiohttp.ClientSession, url: str, text: str, *, key: str = "load",
              headers: dict | None = None) -> tuple[int, dict, str]:
    """(status, headers, the answer's text or the error body) for one Anthropic request."""
    async with s.post(url + "/v1/messages", json=body(text),
                      headers={"x-api-key": KEYS[key], **(headers or {})}) as r:
        raw = await r.read()
        ANSWERED["n"] += r.status == 200
        if r.status != 200:
            return r.status, dict(r.headers), raw.decode(errors="replace")
        msg = await r.json(content_type=None)
        return 200, dict(r.headers), "".join(b.get("text", "") for b in msg["content"])


class Load:
    """`clients` clients, each sending one request after another through `url` until stopped.
    Prompts are new (misses that reach a provider call) unless `repeat` says every n-th one asks
    the same question again (a cache hit)."""

    def __init__(self, s: aiohttp.ClientSession, url: str, clients: int, headers: dict | None = None,
                 repeat: int = 0):
        self.s, self.url, self.clients, self.headers, self.repeat = s, url, clients, headers or {}, repeat
        self.ok = 0
        self.hits = 0
        self.failures: list[tuple[int, str]] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._n = itertools.count()

    @property
    def done(self) -> int:
        return self.ok + len(self.failures)

    async def _client(self, c: int) -> None:
        while not self._stop.is_set():
            n = next(self._n)
            if self.repeat and n % self.repeat == 0:
                text = "Which port does HTTPS use by default?"
            else:
                text = f"Load request {n} from client {c}: {uuid.uuid4().hex}"
            try:
                status, headers, out = await ask(self.s, self.url, text, headers=self.headers)
            except aiohttp.ClientError as e:
                status, headers, out = 0, {}, repr(e)
            if status == 200:
                self.ok += 1
                self.hits += "x-lynkr-cache" in headers
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
    """Until `cond()` holds (a bound for a hang, not a speed test)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(cond):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def client(limit: int = 100):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                     connector=aiohttp.TCPConnector(limit=limit)) as s:
        yield s


def shared(fleet) -> tuple[int, int]:
    """(exact answers, semantic entries) in Redis, by the key layout docs/shared-state.md gives:
    `lynkr:exact:<pipeline>:<stage>:<key>` and the stream `lynkr:semantic:<pipeline>:<stage>`."""
    r = fleet.redis_server.client()
    try:
        return len(r.keys("lynkr:exact:fleet:exact:*")), r.xlen("lynkr:semantic:fleet:cache")
    finally:
        r.close()


async def stored_by(fleet, s: aiohttp.ClientSession, replica, question: str) -> str:
    """Ask `replica` a new question; return its answer once both caches' after hooks have put it
    in Redis (the other replicas can only find it from then on)."""
    exact, semantic = shared(fleet)
    status, h, answer = await ask(s, replica.url, question)
    assert status == 200 and "x-lynkr-cache" not in h and f"({replica.name})" in answer, (status, h, answer)
    await eventually(lambda: all(now > then for now, then in zip(shared(fleet), (exact, semantic))),
                     f"{replica.name}'s answer never reached Redis")
    return answer


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


async def test_an_answer_cached_through_one_replica_is_a_hit_through_another(fleet):
    """The exact cache: a request answered by r0 is answered by r1 with r0's answer, without an
    upstream call. The semantic cache: a question answered by r0, asked in other words on r2,
    gets r0's answer (the upstream numbers its answers with the replica that asked)."""
    r0, r1, r2 = fleet.replicas
    question = f"What does the HTTP status 418 mean? ({uuid.uuid4().hex[:8]})"
    async with client() as s:
        first = await stored_by(fleet, s, r0, question)
        calls = fleet.upstream.stats()["arrived"].get(r1.name, 0)
        status, h, again = await ask(s, r1.url, question)
        assert (status, h.get("x-lynkr-cache"), again) == (200, "exact", first)
        assert fleet.upstream.stats()["arrived"].get(r1.name, 0) == calls

        first = await stored_by(fleet, s, r0, "What is the difference between TCP and UDP?")
        status, h, again = await ask(s, r2.url, "How does TCP differ from UDP?")
    assert (status, h.get("x-lynkr-cache"), again) == (200, "semantic", first)


async def test_a_keys_rpm_is_admitted_once_across_the_three_replicas(fleet):
    """A key with `rpm: 60` gets 60 ± 2 of a burst of 200 admitted, the burst spread round robin
    over three replicas (each alone would admit 60); the rest are refused with 429."""
    before = fleet.upstream.stats()["arrived"]
    async with client(limit=0) as s:
        results = await asyncio.gather(*(ask(s, fleet.lb.url, f"Burst {i}: {uuid.uuid4().hex}", key="burst")
                                         for i in range(200)))
    statuses = [r[0] for r in results]
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    assert 58 <= statuses.count(200) <= 62, statuses.count(200)
    after = fleet.upstream.stats()["arrived"]
    assert all(after.get(r.name, 0) > before.get(r.name, 0) for r in fleet.replicas), (before, after)


def lake_count(fleet) -> int:
    """`lynkr report --sql "select count(*) from requests"` over the fleet's lake, as an operator runs it."""
    out = subprocess.run([sys.executable, "-m", "lynkr.cli", "report", "--config", str(fleet.pipeline),
                          "--sql", "select count(*) from requests", "--format", "csv"],
                         env={**os.environ, **fleet.replicas[0].env}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


async def test_the_lake_counts_every_request_the_fleet_answered(fleet):
    """After load through the balancer, `lynkr report --sql` over the lake (Postgres catalog,
    Parquet files) counts exactly the requests the three replicas answered in this module."""
    async with client() as s:
        async with Load(s, fleet.lb.url, clients=4, repeat=5) as load:
            await load.until(60)
    assert load.failures == []
    await eventually(lambda: lake_count(fleet) >= ANSWERED["n"], f"the lake never reached {ANSWERED['n']} rows")
    assert lake_count(fleet) == ANSWERED["n"]


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


def statuses(fleet) -> list[str]:
    return [r.ready()[1].get("status") for r in fleet.replicas]


async def test_redis_stopped_mid_load_fails_no_request_and_sharing_resumes(fleet):
    """Redis stopped under load (misses and cache hits, a key's counters): zero failed requests;
    every replica's `/health/ready` says `degraded` and stays 200, so HAProxy keeps all three.
    Redis started again (empty, on its port): the replicas reconnect by themselves and an answer
    cached through one is again a hit through another."""
    redis = fleet.redis_server
    async with client() as s:
        async with Load(s, fleet.lb.url, clients=4, repeat=4) as load:
            await load.until(20)
            redis.stop()
            await eventually(lambda: statuses(fleet) == ["degraded"] * 3, f"not degraded: {statuses(fleet)}")
            assert all(r.ready()[0] == 200 for r in fleet.replicas)
            mark = load.done
            await load.until(mark + 40)
            assert set(fleet.lb.states().values()) == {"UP"}
            redis.start()
            await eventually(lambda: statuses(fleet) == ["ready"] * 3, f"not ready again: {statuses(fleet)}")
            await load.until(load.done + 20)
        assert load.failures == [] and load.hits > 0

        r0, r1, _ = fleet.replicas
        question = f"What does the HTTP status 451 mean? ({uuid.uuid4().hex[:8]})"
        first = await stored_by(fleet, s, r0, question)
        status, h, again = await ask(s, r1.url, question)
    assert (status, h.get("x-lynkr-cache"), again) == (200, "exact", first)
