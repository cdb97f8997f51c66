"""Graceful shutdown of a real `lynkr run`: SIGTERM stops accepting, lets in-flight requests and
streams finish (up to server.shutdown_grace_s), flushes telemetry and closes stages; a second
signal exits at once."""
import asyncio
import signal
import socket

import aiohttp
import pytest

from tests.helpers.reliability_faults import FaultyUpstream
from tests.helpers.reliability_util import BODY, LynkrProcess, start_upstream, telemetry_rows

PROBE = '''
from lynkr.stage import Stage


class Probe(Stage):
    """Writes a line to `marker` when closed: the test reads it to know stages were closed."""
    name = "probe"
    options_schema = {"type": "object", "additionalProperties": False,
                      "properties": {"marker": {"type": "string", "description": "file to append to on close"}}}

    async def run(self, x):
        pass

    async def aclose(self):
        with open(self.options["marker"], "a") as f:
            f.write("closed\\n")
'''

PIPE = """
version: 1
server: {{shutdown_grace_s: {grace}}}
providers:
  up: {{kind: anthropic, base_url: "{url}", timeouts: {{read: 60, first_byte: 60}}, retry: {{attempts: 1}}}}
stages:
  - {{id: probe, uses: ./probe.py:Probe, with: {{marker: "{marker}"}}}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}, needs: [probe]}}
telemetry: {{path: "{telemetry}", flush_interval_s: 5}}
"""


@pytest.fixture
async def upstream():
    up = FaultyUpstream()
    runner = await start_upstream(up)
    yield up
    await runner.cleanup()


def _pipeline(tmp_path, url, grace):
    (tmp_path / "probe.py").write_text(PROBE)
    p = tmp_path / "pipeline.yaml"
    p.write_text(PIPE.format(grace=grace, url=url, marker=tmp_path / "closed.txt", telemetry=tmp_path / "t.duckdb"))
    return p


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


async def _until_refused(port: int, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not _refused(port):
            await asyncio.sleep(0.02)


async def test_sigterm_drains_streams_and_requests_then_flushes_and_closes(upstream, tmp_path):
    lynkr = LynkrProcess(_pipeline(tmp_path, upstream.url, grace=30))
    try:
        await lynkr.ready()
        # Secure default: nothing in the pipeline says otherwise, so it is bound to loopback only.
        assert f"http://127.0.0.1:{lynkr.port}" in lynkr.output()
        async with aiohttp.ClientSession() as s:
            stream = await s.post(lynkr.url + "/v1/messages", json={**BODY, "model": "slow", "stream": True})
            assert stream.status == 200
            first = await stream.content.readline()
            assert first.startswith(b"event: message_start")
            plain = asyncio.create_task(s.post(lynkr.url + "/v1/messages", json={**BODY, "model": "slow"}))
            while upstream.calls["slow"] < 2:
                await asyncio.sleep(0.01)

            lynkr.signal(signal.SIGTERM)
            await _until_refused(lynkr.port)          # stopped accepting …
            rest = await stream.read()                # … while the stream runs to its end
            assert b"event: message_stop" in rest and b"event: error" not in rest
            r = await plain
            assert r.status == 200 and (await r.json())["content"][0]["text"]
            r.release()
        assert await lynkr.wait() == 0
        assert (tmp_path / "closed.txt").read_text() == "closed\n"
        # flush_interval_s is 5: the rows are there because shutdown flushed them.
        assert telemetry_rows(tmp_path / "t.duckdb", where="WHERE status = 200") == 2
    finally:
        lynkr.kill()


async def test_grace_deadline_bounds_a_stuck_request(upstream, tmp_path):
    lynkr = LynkrProcess(_pipeline(tmp_path, upstream.url, grace=0.5))
    try:
        await lynkr.ready()
        async with aiohttp.ClientSession() as s:
            stuck = asyncio.create_task(s.post(lynkr.url + "/v1/messages", json={**BODY, "model": "silence"}))
            while upstream.calls["silence"] < 1:
                await asyncio.sleep(0.01)
            lynkr.signal(signal.SIGTERM)
            assert await lynkr.wait(timeout=20) == 0
            # The stuck client is not left hanging: its connection ends with the process.
            with pytest.raises(aiohttp.ClientError):
                r = await stuck
                await r.read()
        assert (tmp_path / "closed.txt").read_text() == "closed\n"
    finally:
        lynkr.kill()


async def test_second_signal_exits_at_once(upstream, tmp_path):
    lynkr = LynkrProcess(_pipeline(tmp_path, upstream.url, grace=120))
    try:
        await lynkr.ready()
        async with aiohttp.ClientSession() as s:
            stuck = asyncio.create_task(s.post(lynkr.url + "/v1/messages", json={**BODY, "model": "silence"}))
            while upstream.calls["silence"] < 1:
                await asyncio.sleep(0.01)
            lynkr.signal(signal.SIGTERM)
            await _until_refused(lynkr.port)      # draining, and would wait up to 120 s for the stuck request
            assert lynkr.proc.poll() is None
            lynkr.signal(signal.SIGINT)
            assert await lynkr.wait(timeout=20) == 130
            stuck.cancel()
    finally:
        lynkr.kill()


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")     # exited, not yet reaped
    except OSError:
        return True


async def _workers_up(lynkr) -> list[int]:
    """Wait until a `--workers 2` Lynkr serves and has forked its worker; the workers' pids."""
    await lynkr.ready()
    async with asyncio.timeout(10):
        while len(lynkr.workers()) < 1:
            await asyncio.sleep(0.05)
    return lynkr.workers()


async def test_workers_drain_with_the_parent_and_exit_with_a_second_signal(upstream, tmp_path):
    lynkr = LynkrProcess(_pipeline(tmp_path, upstream.url, grace=120), args=("--workers", "2"))
    try:
        children = await _workers_up(lynkr)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            # Streams on several connections: the kernel spreads them over both processes.
            streams = [await s.post(lynkr.url + "/v1/messages", json={**BODY, "model": "slow", "stream": True})
                       for _ in range(4)]
            for r in streams:
                assert (await r.content.readline()).startswith(b"event: message_start")
            lynkr.signal(signal.SIGTERM)      # to the parent only, as docker and kubernetes do
            await _until_refused(lynkr.port)  # neither process accepts any more
            for r in streams:
                assert b"event: message_stop" in await r.read()
        assert await lynkr.wait() == 0
        assert all(_gone(pid) for pid in children)
    finally:
        lynkr.kill()

    lynkr = LynkrProcess(_pipeline(tmp_path, upstream.url, grace=120), args=("--workers", "2"))
    try:
        children = await _workers_up(lynkr)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            stuck = [asyncio.create_task(s.post(lynkr.url + "/v1/messages", json={**BODY, "model": "silence"}))
                     for _ in range(4)]
            while upstream.calls["silence"] < 4:
                await asyncio.sleep(0.01)
            lynkr.signal(signal.SIGTERM)
            await _until_refused(lynkr.port)
            lynkr.signal(signal.SIGTERM)
            assert await lynkr.wait(timeout=20) == 130
            async with asyncio.timeout(20):
                while not all(_gone(pid) for pid in children):
                    await asyncio.sleep(0.05)
            for t in stuck:
                t.cancel()
    finally:
        lynkr.kill()
