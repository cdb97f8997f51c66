"""lynkr.storage.db_service: the one process that writes DuckDB files for `lynkr run`'s workers."""
import asyncio
import datetime as dt
import os
import signal
import subprocess
import threading
import time

import duckdb
import orjson

from lynkr.storage import db_service
from lynkr.storage.cache_store import CacheStore
from lynkr.exchange import Exchange, Response
from lynkr.telemetry import TelemetryWriter
from tests.conftest import free_port
from tests.helpers.serve import PIPE, start_lynkr, wait_ready

MSG = {"content": [{"type": "text", "text": "ok"}]}


def _exchange(text: str) -> Exchange:
    x = Exchange.new("anthropic", {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]})
    x.response = Response(message={"content": []}, usage={"input_tokens": 7, "output_tokens": 3})
    x.upstream_request = x.request
    return x


def test_telemetry_and_cache_go_through_the_service_and_survive_its_loss(tmp_path, monkeypatch):
    monkeypatch.delenv(db_service.ENV, raising=False)
    proc = db_service.start_service()
    assert proc is not None and os.environ[db_service.ENV]
    try:
        tele, cache = str(tmp_path / "t.duckdb"), str(tmp_path / "c.duckdb")
        w = TelemetryWriter(tele, flush_interval=0.05)
        xs = [_exchange(f"hello {i}") for i in range(3)]
        for x in xs:
            w.submit(x)
        w.flush()
        st = CacheStore(cache)
        st.put(id="v", kind="semantic", stage="cache", scope="sc", message=MSG, created=1.0, expires=9e9,
               text="q", vector=[0.25] * 4)
        st.flush()
        sem = st.load("semantic", "cache")
        assert sem[0]["vector"] == [0.25] * 4 and sem[0]["message"] == MSG and st.errors == 0
        # This process never loaded DuckDB's writer side: the service did the work.
        assert w.written == 3
        # The service dies; the next batch is written from this process instead of being lost.
        proc.kill()
        proc.wait()
        x = _exchange("after the service")
        w.submit(x)
        w.flush()
        w.close()
        st.release()
        con = duckdb.connect(tele, read_only=True)
        ids = {r[0] for r in con.execute("select id from requests").fetchall()}
        # Timestamps crossed the socket as ISO strings and are timestamps again, to the microsecond.
        ts = con.execute("select id, ts from requests").fetchall()
        con.close()
        assert ids == {x.id for x in [*xs, x]}
        want = {e.id: dt.datetime.fromtimestamp(e.ts, dt.timezone.utc).replace(tzinfo=None) for e in [*xs, x]}
        assert dict(ts) == want
    finally:
        db_service.stop_service(proc)
    assert db_service.ENV not in os.environ


def test_a_failing_operation_is_an_error_for_the_caller_not_the_end_of_the_service(tmp_path, monkeypatch):
    monkeypatch.delenv(db_service.ENV, raising=False)
    proc = db_service.start_service()
    try:
        (tmp_path / "not-a-db.duckdb").write_text("this is not a DuckDB file")
        try:
            db_service.call("cache.load", str(tmp_path / "not-a-db.duckdb"), ["exact", "s", 0.0])
            raise AssertionError("expected an error")
        except db_service.DBServiceError as e:
            assert "not-a-db" in str(e) or "valid" in str(e).lower()
        st = CacheStore(str(tmp_path / "c.duckdb"))     # the service still answers
        assert st.load("exact", "s") == []
        st.release()
    finally:
        db_service.stop_service(proc)


def _serve(tmp_path, env=None):
    pipe = tmp_path / "p.yaml"
    pipe.write_text(PIPE % ("http://127.0.0.1:9", tmp_path / "t.duckdb"))
    port = free_port()
    proc = start_lynkr(pipe, port, env=env)
    asyncio.run(wait_ready(f"http://127.0.0.1:{port}", proc))
    return proc


def _writers(proc) -> list[str]:
    return subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "lynkr.storage.db_service"],
                          capture_output=True, text=True).stdout.split()


def _stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def test_lynkr_run_workers_never_load_duckdb(tmp_path):
    """The point of the service: a server process's memory holds no DuckDB."""
    proc = _serve(tmp_path)
    try:
        assert "duckdb" not in open(f"/proc/{proc.pid}/maps").read()
        writers = _writers(proc)
        assert len(writers) == 1
        assert "duckdb" in open(f"/proc/{writers[0]}/maps").read()
    finally:
        _stop(proc)
    assert not os.path.exists(f"/proc/{writers[0]}")      # stopped with the server


def test_the_writer_process_can_be_turned_off(tmp_path):
    proc = _serve(tmp_path, env={"LYNKR_DB_SERVICE": "off"})
    try:
        assert _writers(proc) == []
        assert "duckdb" in open(f"/proc/{proc.pid}/maps").read()     # the worker writes itself
    finally:
        _stop(proc)


def _stalled_writes(monkeypatch) -> threading.Event:
    """Telemetry writes wait until the returned event is set (in-process, no writer process)."""
    monkeypatch.delenv(db_service.ENV, raising=False)
    gate = threading.Event()
    real = db_service.call

    def slow(name, path, payload=None, **kw):
        if name == "telemetry.write":
            gate.wait(30)
        return real(name, path, payload, **kw)

    monkeypatch.setattr(db_service, "call", slow)
    return gate


def test_a_stalled_write_bounds_what_waits_and_counts_what_is_dropped(tmp_path, monkeypatch):
    """Writes slower than requests (a report holding the file, a slow disk): memory stays bounded."""
    gate = _stalled_writes(monkeypatch)
    w = TelemetryWriter(str(tmp_path / "t.duckdb"), flush_interval=0.01, batch_size=5, max_queue=20)
    for i in range(200):
        w.submit(_exchange(f"q {i}"))
    time.sleep(0.3)
    assert w.dropped > 0 and w.queued <= 20
    gate.set()
    w.flush()
    w.close()
    assert w.written + w.dropped == 200


def test_big_requests_waiting_for_their_rows_are_bounded_by_their_bytes(tmp_path, monkeypatch):
    """A count bound alone let 2,000 finished 62 KB requests (~300 KB each in memory) wait while
    the rows stalled; the bodies' bytes bound them too."""
    gate = _stalled_writes(monkeypatch)
    w = TelemetryWriter(str(tmp_path / "t.duckdb"), flush_interval=0.01, batch_size=5, max_queue=1000,
                        max_queue_bytes=10 * 62_000)
    for i in range(200):
        x = _exchange(f"q {i}")
        x.headers["content-length"] = "62000"
        w.submit(x)
        time.sleep(0.001)
    time.sleep(0.3)
    assert w.dropped > 0 and w.queued <= 10
    gate.set()
    w.flush()
    w.close()
    assert w.written + w.dropped == 200 and w.written >= 10


TOON_PIPE = """
version: 1
name: counted
providers:
  up: {kind: anthropic, base_url: "%s"}
stages:
  - {id: json, uses: toon}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
telemetry: {path: "%s", flush_interval_s: 0.2}
"""


async def test_workers_count_tokens_in_the_writer_process(tmp_path, anthropic_upstream):
    """cl100k_base (~28 MB) is held once, by the writer process; toon's choice of form and the
    telemetry's counts in a worker come from there."""
    import aiohttp
    rows = [{"id": i, "name": f"item-{i}", "stock": i * 3, "ok": i % 2 == 0} for i in range(40)]
    body = {"model": "claude-x", "max_tokens": 5, "messages": [
        {"role": "user", "content": "list the stock"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "stock", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": orjson.dumps(rows).decode()}]}]}
    pipe = tmp_path / "p.yaml"
    pipe.write_text(TOON_PIPE % (anthropic_upstream.url, tmp_path / "t.duckdb"))
    port = free_port()
    proc = start_lynkr(pipe, port)
    try:
        await wait_ready(f"http://127.0.0.1:{port}", proc)
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{port}/v1/messages", json=body,
                              headers={"anthropic-version": "2023-06-01"}) as r:
                assert r.status == 200, await r.text()
        sent = anthropic_upstream.requests[-1]["messages"][-1]["content"][0]["content"]
        assert "[40]{" in str(sent)                       # toon picked TOON: it had counts to compare
        writers = _writers(proc)
        assert "tiktoken" not in open(f"/proc/{proc.pid}/maps").read()
        assert "tiktoken" in open(f"/proc/{writers[0]}/maps").read()
    finally:
        _stop(proc)
    con = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
    client, upstream = con.execute("select tokens_client, tokens_upstream from requests").fetchone()
    assert client > upstream > 0


def test_token_counts_are_the_same_through_the_service(tmp_path, monkeypatch):
    from lynkr.kit import tokens
    texts = ["hello world", "", '{"a": [1, 2, 3]}', "naïve café " * 50]
    monkeypatch.delenv(db_service.ENV, raising=False)
    here = [len(tokens.encoding().encode_ordinary(t)) for t in texts]
    proc = db_service.start_service()
    try:
        assert db_service.call("tokens.count", "", texts) == here
    finally:
        db_service.stop_service(proc)
