"""`state: {redis: URL}` against a real redis-server (tests/helpers/redis_server.py): replicas share
the exact and semantic caches, the key counters, breaker openings and session tier floors; with
Redis stopped every request is still answered from local state, `/health/ready` says `degraded`
and `/metrics` counts it; started again, the replicas share again by themselves; refused
credentials and a malformed URL stop the start with the file, `state.redis` and the line."""
from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import orjson
import pytest

from lynkr.config.loader import load_config
from lynkr.errors import ConfigError
from tests.conftest import free_port
from tests.helpers.redis_server import RedisServer, need_redis, redis_server  # noqa: F401  (fixture)
from tests.helpers.reliability_util import BODY, lynkr_app, post
from tests.helpers.serve import start_lynkr, wait_ready

PIPE = """
version: 1
name: fleet
providers:
  up: {kind: anthropic, base_url: "%(up)s"}
stages:
  - {id: exact, uses: exact_cache, with: {ttl: 600, persist: false}}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
state: {redis: "%(redis)s"}
state_dir: "%(dir)s"
telemetry: {path: "%(dir)s/t.duckdb"}
"""


def pipeline(tmp_path, name: str, up_url: str, redis_url: str, text: str = PIPE, extra: str = "",
             timeout_s: float | None = 2.0):
    """A replica's pipeline. `timeout_s` 2 by default: on a loaded CI machine a burst can lag the
    event loop past the 0.5 s default, and a test of sharing must not degrade to local state
    (the tests of degradation pass None: the default)."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    p = folder / "p.yaml"
    text = text % {"up": up_url, "redis": redis_url, "dir": folder} + extra
    if timeout_s is not None:
        text = text.replace(f'state: {{redis: "{redis_url}"}}', f'state: {{redis: "{redis_url}", timeout_s: {timeout_s}}}')
    p.write_text(text)
    return p


def ask(text: str) -> dict:
    return {**BODY, "messages": [{"role": "user", "content": text}]}


async def until(check, what: str, timeout: float = 20.0):
    """Wait for a condition another process or task brings about (not a timing assertion: the
    deadline only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


def keys_like(server: RedisServer, pattern: str) -> list:
    c = server.client()
    try:
        return c.keys(pattern)
    finally:
        c.close()


async def get_json(url: str, path: str):
    async with aiohttp.ClientSession() as s:
        async with s.get(url + path) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


# -- the exact cache ---------------------------------------------------------------------------------

async def test_an_exact_answer_stored_through_one_replica_is_a_hit_through_another(
        anthropic_upstream, redis_server, tmp_path):
    """Two replicas (separate engines, separate in-memory caches, one Redis): the answer replica A
    stored answers replica B's identical request with `x-lynkr-cache: exact`, without the upstream;
    the Redis key carries the stage's ttl."""
    a = pipeline(tmp_path, "a", anthropic_upstream.url, redis_server.url)
    b = pipeline(tmp_path, "b", anthropic_upstream.url, redis_server.url)
    async with lynkr_app(a, tmp_path / "a") as (_app_a, url_a), lynkr_app(b, tmp_path / "b") as (_app_b, url_b):
        status, headers, _ = await post(url_a, body=ask("what is a monad?"))
        assert status == 200 and headers.get("x-lynkr-cache") is None
        await until(lambda: keys_like(redis_server, "lynkr:exact:*"), "A's answer in Redis")
        status, headers, body = await post(url_b, body=ask("what is a monad?"))
        assert status == 200 and headers.get("x-lynkr-cache") == "exact"
        assert orjson.loads(body)["content"][0]["type"] == "text"
    assert len(anthropic_upstream.requests) == 1
    c = redis_server.client()
    ttl = c.pttl(keys_like(redis_server, "lynkr:exact:*")[0])
    c.close()
    assert 0 < ttl <= 600_000


# -- counters ----------------------------------------------------------------------------------------

async def test_rpm_is_shared_by_three_lynkr_processes(anthropic_upstream, redis_server, tmp_path):
    """Three `lynkr run` processes on one Redis admit a key's rpm once between them: 60 +- 2 of a
    burst of 200 spread over the three."""
    secret = "fleet-key-0123456789abcdef"
    keys_yaml = f'keys:\n  burst: {{secret: "{secret}", limits: {{rpm: 60}}}}\n'
    procs, urls = [], []
    try:
        for name in ("r1", "r2", "r3"):
            p = pipeline(tmp_path, name, anthropic_upstream.url, redis_server.url, extra=keys_yaml)
            port = free_port()
            procs.append(start_lynkr(p, port))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs):
            await wait_ready(url, proc, timeout=120)   # three starting at once on a busy machine
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as s:
            async def one(i):
                body = ask(f"question number {i}")
                async with s.post(urls[i % 3] + "/v1/messages", json=body, headers={"x-api-key": secret}) as r:
                    await r.read()
                    return r.status
            statuses = await asyncio.gather(*(one(i) for i in range(200)))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    assert 58 <= statuses.count(200) <= 62, statuses.count(200)


# -- Redis goes away and comes back ----------------------------------------------------------------

async def test_redis_stopped_mid_load_fails_no_request_and_reconnects(anthropic_upstream, tmp_path):
    """With Redis stopped under load (a limited key, the exact cache): every request is answered,
    `/health/ready` is 200 `degraded`, `/metrics` counts the errors and fallbacks; once Redis is
    back the replica reconnects by itself and answers are shared again."""
    need_redis()
    secret = "down-key-0123456789abcdef"
    keys_yaml = f'keys:\n  down: {{secret: "{secret}", limits: {{rpm: 100000}}}}\n'
    with RedisServer() as server:
        a = pipeline(tmp_path, "a", anthropic_upstream.url, server.url, extra=keys_yaml, timeout_s=None)
        b = pipeline(tmp_path, "b", anthropic_upstream.url, server.url, extra=keys_yaml, timeout_s=None)
        async with lynkr_app(a, tmp_path / "a") as (_a, url_a), lynkr_app(b, tmp_path / "b") as (_b, url_b):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
                async def one(i, url):
                    async with s.post(url + "/v1/messages", json=ask(f"load {i % 7}"),
                                      headers={"x-api-key": secret}) as r:
                        await r.read()
                        return r.status

                async def load(n, start):
                    return await asyncio.gather(*(one(start + i, (url_a, url_b)[i % 2]) for i in range(n)))

                before = load(40, 0)
                task = asyncio.ensure_future(before)
                await asyncio.sleep(0)
                server.stop()
                statuses = list(await task) + list(await load(60, 100))
                assert statuses.count(200) == len(statuses), sorted(set(statuses))
                status, ready = await get_json(url_a, "/health/ready")
                assert status == 200 and ready["status"] == "degraded", ready
                assert ready["state"]["up"] is False and "127.0.0.1" in ready["state"]["url"]
                _, metrics = await get_json(url_a, "/metrics")
                assert "lynkr_shared_state_up 0" in metrics
                assert _counter(metrics, "lynkr_shared_state_errors_total") >= 1
                assert _counter(metrics, "lynkr_shared_state_fallbacks_total") >= 1

                server.start()
                for url in (url_a, url_b):
                    await until(lambda url=url: _ready_status(url), "reconnected", timeout=30)
                status, headers, _ = await post(url_a, body=ask("after the outage"), headers={"x-api-key": secret})
                assert status == 200
                await until(lambda: keys_like(server, "lynkr:exact:*"), "stored again in Redis")
                status, headers, _ = await post(url_b, body=ask("after the outage"), headers={"x-api-key": secret})
                assert status == 200 and headers.get("x-lynkr-cache") == "exact"
                _, metrics = await get_json(url_a, "/metrics")
                assert "lynkr_shared_state_reconnects_total 1" in metrics


async def _ready_status(url: str) -> bool:
    status, body = await get_json(url, "/health/ready")
    return status == 200 and body["status"] == "ready"


def _counter(metrics: str, name: str) -> int:
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines() if line.startswith(name))


async def test_redis_down_at_start_starts_degraded_with_a_warning(anthropic_upstream, tmp_path):
    """A Redis that does not answer at start is not a configuration error: `lynkr run` warns,
    serves from local state and says `degraded` until Redis answers."""
    need_redis()
    server = RedisServer()              # a port, nothing listening yet
    try:
        p = pipeline(tmp_path, "a", anthropic_upstream.url, server.url)
        port = free_port()
        proc = start_lynkr(p, port)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(url, proc, timeout=120)
            assert (await post(url, body=ask("hello")))[0] == 200
            status, ready = await get_json(url, "/health/ready")
            assert status == 200 and ready["status"] == "degraded"
            server.start()
            await until(lambda: _ready_status(url), "reconnected", timeout=30)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        text = err.decode()
        assert "state.redis" in text and "does not answer" in text
        assert f"state        shared through redis://127.0.0.1:{server.port}/0  (not answering" in text
    finally:
        server.close()


# -- bad input -----------------------------------------------------------------------------------------

def test_a_wrong_password_stops_the_start_naming_file_path_and_line(anthropic_upstream, tmp_path):
    """AUTH refused is a configuration error: `lynkr run` exits 1 at once with one line naming the
    pipeline file, `state.redis` and its line, no traceback, and the password masked."""
    need_redis()
    with RedisServer(password="right-password-123") as server:
        p = pipeline(tmp_path, "a", "http://127.0.0.1:9", server.url_with_password("wrong-password-456"))
        proc = start_lynkr(p, free_port())
        out, err = proc.communicate(timeout=60)
    text = err.decode()
    line = next(i for i, t in enumerate(p.read_text().splitlines(), 1) if t.startswith("state:"))
    assert proc.returncode == 1, text
    assert f"{p}:{line}: state.redis:" in text and "refused the credentials" in text, text
    assert "Traceback" not in text and "wrong-password-456" not in text


async def test_a_wrong_password_refuses_an_in_process_engine_too(tmp_path):
    """The same check when an application builds the engine itself: a ConfigError naming the line."""
    with RedisServer(password="right-password-123") as server:
        p = pipeline(tmp_path, "a", "http://127.0.0.1:9", server.url_with_password("nope-nope-nope"))
        with pytest.raises(ConfigError) as e:
            async with lynkr_app(p, tmp_path / "a"):
                pass
    assert e.value.path == ("state", "redis") and e.value.line is not None


@pytest.mark.parametrize("url,words", [
    ("http://127.0.0.1:6379", "unknown scheme http://"),
    ("redis://127.0.0.1:notaport/0", "not a Redis URL"),
    ("redis://127.0.0.1:6379/cache", "must be a number"),
    ("redis:///0", "no host"),
])
def test_a_malformed_redis_url_is_a_load_error_with_its_line(tmp_path, url, words):
    """A URL no client can use is refused when the file is loaded (`lynkr validate` too)."""
    p = pipeline(tmp_path, "a", "http://127.0.0.1:9", url)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert words in str(e.value) and e.value.path == ("state", "redis")
    assert e.value.line == next(i for i, t in enumerate(p.read_text().splitlines(), 1) if t.startswith("state:"))


def test_no_state_means_no_redis_at_all(tmp_path):
    """Without `state:` nothing changes: the engine never imports redis-py."""
    import subprocess
    import sys
    code = ("import sys, asyncio\nfrom lynkr.engine.runtime import Engine\n"
            f"e = Engine({str(tmp_path / 'p.yaml')!r}, watch=False, telemetry_path={str(tmp_path / 't.duckdb')!r})\n"
            "asyncio.run(e.start()); asyncio.run(e.stop())\nprint('redis' in sys.modules)")
    (tmp_path / "p.yaml").write_text("version: 1\nproviders:\n  up: {kind: anthropic, base_url: 'http://127.0.0.1:9'}\n"
                                     f"stages:\n  - {{id: exact, uses: exact_cache, with: {{persist: false}}}}\n"
                                     "  - {id: call, uses: provider_call, with: {to: 'up:*'}}\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("False"), out.stderr[-2000:]


# -- the semantic cache --------------------------------------------------------------------------------

SEMANTIC = PIPE.replace("  - {id: exact, uses: exact_cache, with: {ttl: 600, persist: false}}\n",
                        "  - {id: cache, uses: semantic_cache, with: {ttl: 600, persist: false}}\n")


async def test_a_semantic_answer_stored_through_one_replica_is_a_hit_through_another(
        anthropic_upstream, redis_server, tmp_path):
    """Replica A stores an answer; replica B, asked the question in other words, takes A's entry in
    from Redis on its lookup and answers `x-lynkr-cache: semantic` (its own index and guard), with
    the upstream asked once. A rephrasing the guard refuses (other numbers) still misses on B."""
    a = pipeline(tmp_path, "a", anthropic_upstream.url, redis_server.url, text=SEMANTIC)
    b = pipeline(tmp_path, "b", anthropic_upstream.url, redis_server.url, text=SEMANTIC)
    async with lynkr_app(a, tmp_path / "a") as (_a, url_a), lynkr_app(b, tmp_path / "b") as (_b, url_b):
        status, headers, _ = await post(url_a, body=ask("What is the difference between TCP and UDP?"))
        assert status == 200 and headers.get("x-lynkr-cache") is None
        c = redis_server.client()
        try:
            await until(lambda: c.exists("lynkr:semantic:fleet:cache") and c.xlen("lynkr:semantic:fleet:cache"),
                        "A's entry in the stream")
            ttl = c.pttl("lynkr:semantic:fleet:cache")
        finally:
            c.close()
        assert 0 < ttl <= 600_000
        status, headers, _ = await post(url_b, body=ask("How does TCP differ from UDP?"))
        assert status == 200 and headers.get("x-lynkr-cache") == "semantic", dict(headers)
        status, headers, _ = await post(url_b, body=ask("What is the difference between TCP and UDP on port 53?"))
        assert status == 200 and headers.get("x-lynkr-cache") is None
    assert len(anthropic_upstream.requests) == 2


# -- breakers and session floors -----------------------------------------------------------------------

BROKEN = """
version: 1
name: fleet
providers:
  up: {kind: anthropic, base_url: "%(up)s", retry: {attempts: 1}, breaker: {threshold: 1, cooldown_s: 60}}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
state: {redis: "%(redis)s"}
state_dir: "%(dir)s"
telemetry: {path: "%(dir)s/t.duckdb"}
"""


async def test_a_breaker_opened_by_one_replica_is_open_on_another(redis_server, tmp_path):
    """Replica A's breaker opens on a dead upstream; replica B learns it through Redis, shows it
    open and refuses with `circuit_open` without calling the upstream itself; the key lives for the
    cooldown."""
    dead = f"http://127.0.0.1:{free_port()}"
    a = pipeline(tmp_path, "a", dead, redis_server.url, text=BROKEN)
    b = pipeline(tmp_path, "b", dead, redis_server.url, text=BROKEN)
    async with lynkr_app(a, tmp_path / "a") as (_a, url_a), lynkr_app(b, tmp_path / "b") as (app_b, url_b):
        status, _, _ = await post(url_a, body=ask("anyone there?"))
        assert status == 502

        async def open_on_b():
            _, got = await get_json(url_b, "/v1/health/providers")
            return [k for k, v in got["breakers"].items() if v["state"] == "open"]
        assert await until(open_on_b, "B sees the breaker open") == ["up:claude-x"]
        status, _, body = await post(url_b, body=ask("anyone there?"))
        assert status == 503 and b"circuit open" in body
        c = redis_server.client()
        try:
            (key,) = c.keys("lynkr:breaker:*")
            assert 0 < c.pttl(key) <= 60_000
        finally:
            c.close()


SCORED = """
version: 1
name: fleet
providers:
  up: {kind: anthropic, base_url: "%(up)s"}
stages:
  - {id: score, uses: score, with: {weights: {agentic: -60}}}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
state: {redis: "%(redis)s"}
state_dir: "%(dir)s"
telemetry: {path: "%(dir)s/t.duckdb"}
"""

LOOP_ASK = "Refactor the storage layer across the repository and update the tests."


def tool_loop(depth: int) -> dict:
    msgs = [{"role": "user", "content": [{"type": "text", "text": LOOP_ASK}]}]
    for i in range(depth):
        msgs.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_{i:08d}", "name": "Bash",
                                                        "input": {"command": "pytest"}}]})
        msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i:08d}",
                                                  "content": "ok"}]})
    return {"model": "claude-x", "max_tokens": 100, "messages": msgs,
            "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]}


async def test_a_session_floor_set_on_one_replica_holds_on_another(anthropic_upstream, redis_server, tmp_path):
    """A tool loop that starts COMPLEX on replica A keeps COMPLEX when its deeper turn lands on
    replica B (which, on its own, would score it lower), while another session on B is scored alone."""
    a = pipeline(tmp_path, "a", anthropic_upstream.url, redis_server.url, text=SCORED)
    b = pipeline(tmp_path, "b", anthropic_upstream.url, redis_server.url, text=SCORED)
    session = {"x-claude-code-session-id": "3f1c2a9e-loop"}
    async with lynkr_app(a, tmp_path / "a") as (_a, url_a), lynkr_app(b, tmp_path / "b") as (_b, url_b):
        status, headers, _ = await post(url_a, body=tool_loop(0), headers=session)
        assert status == 200 and headers["x-lynkr-tier"] == "COMPLEX"
        status, headers, _ = await post(url_b, body=tool_loop(6), headers=session)
        assert status == 200 and headers["x-lynkr-tier"] == "COMPLEX"
        status, headers, _ = await post(url_b, body=tool_loop(6), headers={"x-claude-code-session-id": "other"})
        assert status == 200 and headers["x-lynkr-tier"] != "COMPLEX"
    c = redis_server.client()
    try:
        assert 0 < c.ttl("lynkr:floor:3f1c2a9e-loop") <= 6 * 3600
    finally:
        c.close()


async def test_a_hung_redis_costs_no_request_and_answers_stay_right_after_it_wakes(anthropic_upstream, tmp_path):
    """Redis that stops answering (SIGSTOP: connections open, nothing read): requests are still
    served from local state and `/health/ready` says degraded; after SIGCONT the replicas reconnect,
    the counters go on from what Redis holds, an admission that timed out holds no in-flight slot,
    and an answer stored through one replica is served right through the other."""
    need_redis()
    secret, free = "hung-key-0123456789abcdef", "free-key-0123456789abcdef"
    # Key names of their own: without a writer process the host's counters are this test process's.
    keys_yaml = f'keys:\n  hung: {{secret: "{secret}", limits: {{rpm: 30}}}}\n  free: {{secret: "{free}"}}\n'
    with RedisServer() as server:
        a = pipeline(tmp_path, "a", anthropic_upstream.url, server.url, extra=keys_yaml, timeout_s=None)
        b = pipeline(tmp_path, "b", anthropic_upstream.url, server.url, extra=keys_yaml, timeout_s=None)
        key = {"x-api-key": secret}
        async with lynkr_app(a, tmp_path / "a") as (_a, url_a), lynkr_app(b, tmp_path / "b") as (_b, url_b):
            for i in range(10):
                assert (await post(url_a, body=ask(f"before {i}"), headers=key))[0] == 200
            server.pause()
            try:
                statuses = await asyncio.gather(*(post((url_a, url_b)[i % 2], body=ask(f"hung {i}"), headers=key)
                                                  for i in range(12)))
                assert [s for s, _h, _b in statuses] == [200] * 12
                status, ready = await get_json(url_a, "/health/ready")
                assert status == 200 and ready["status"] == "degraded"
            finally:
                server.resume()
            for url in (url_a, url_b):
                await until(lambda url=url: _ready_status(url), "reconnected after SIGCONT", timeout=30)
            # 10 counted in Redis before the pause. An admission sent as Redis hung timed out (and was
            # counted locally), but Redis may still run it when it wakes: that errs towards fewer.
            after = [(await post((url_a, url_b)[i % 2], body=ask(f"after {i}"), headers=key))[0] for i in range(25)]
            admitted = after.count(200)
            assert 20 - 12 <= admitted <= 20 and after[admitted:] == [429] * (25 - admitted), after
            c = server.client()
            try:
                await until(lambda: c.zcard("lynkr:limits:key:hung:inflight") == 0, "no in-flight slot left held")
            finally:
                c.close()
            status, _h, first = await post(url_a, body=ask("after the wake"), headers={"x-api-key": free})
            assert status == 200
            await until(lambda: len(keys_like(server, "lynkr:exact:*")) >= 11 + admitted, "the answer in Redis")
            status, headers, again = await post(url_b, body=ask("after the wake"), headers={"x-api-key": free})
            assert status == 200 and headers.get("x-lynkr-cache") == "exact"
            assert orjson.loads(again)["content"] == orjson.loads(first)["content"]


# -- a folder of pipelines ------------------------------------------------------------------------------

async def test_a_folder_shares_the_state_its_front_pipeline_names(anthropic_upstream, redis_server, tmp_path):
    """`lynkr run pipelines/`: `state:` is a process section, like `server:`: the front pipeline's
    Redis serves every pipeline of the folder (an exact answer of the second file's pipeline lands
    in Redis), and a second file writing `state:` is a load error naming both."""
    from tests.test_pipeline_folder import folder_proxy
    folder = tmp_path / "pipes"
    folder.mkdir()
    front = pipeline(tmp_path, "front", anthropic_upstream.url, redis_server.url).read_text()
    (folder / "main.yaml").write_text(front.replace("name: fleet", "name: main"))
    project = front.replace("name: fleet", "name: project")
    (folder / "project.yaml").write_text(project[:project.index("state:")])
    async with folder_proxy(folder, tmp_path) as (engine, url):
        status, _h, _b = await post(url + "/p/project", body=ask("which pipeline am I?"))
        assert status == 200
        await until(lambda: keys_like(redis_server, "lynkr:exact:project:*"), "the project's answer in Redis")
        _, ready = await get_json(url, "/health/ready")
        assert ready["state"]["up"] is True
    (folder / "project.yaml").write_text(project[:project.index("state:")] + f'state: {{redis: "{redis_server.url}"}}\n')
    from lynkr.config.folder import load_front
    with pytest.raises(ConfigError) as e:
        load_front(str(folder))
    assert e.value.path == ("state", "redis") and "main.yaml" in str(e.value) and "project.yaml" in str(e.value)
