"""Performance plumbing: `lynkr run --workers N` keeps telemetry whole, the cache
store batches its writes, and the overhead benchmark's bodies are unique per request.
No timings are asserted here; benchmarks/overhead.py measures."""
import asyncio
import signal
import subprocess
import sys

import aiohttp
import duckdb

from tests.helpers.bench_bodies import MARK, fixed, workload_bodies
from lynkr.storage.cache_store import CacheStore
from tests.conftest import free_port
from tests.helpers.serve import BODY, PIPE, start_lynkr, wait_ready


async def test_workers_share_the_port_and_every_row_lands(anthropic_upstream, tmp_path):
    db = tmp_path / "t.duckdb"
    pipe = tmp_path / "p.yaml"
    pipe.write_text(PIPE % (anthropic_upstream.url, db))
    port = free_port()
    proc = start_lynkr(pipe, port, args=("--workers", "2", "--log-level", "warning"))
    url = f"http://127.0.0.1:{port}"
    ids: list[str] = []
    try:
        await wait_ready(url, proc)
        # A new connection per request, so the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as s:
            async def one():
                async with s.post(url + "/v1/messages", json=BODY) as r:
                    assert r.status == 200, await r.text()
                    ids.append(r.headers["x-lynkr-request-id"])
            for _ in range(8):
                await asyncio.gather(*(one() for _ in range(20)))
        # A report while both workers serve reads the shared file.
        loop = asyncio.get_running_loop()
        rep = await loop.run_in_executor(None, lambda: subprocess.run(
            [sys.executable, "-m", "lynkr.cli", "report", "--db", str(db), "--sql", "select count(*) as n from requests"],
            capture_output=True, text=True, timeout=60))
        assert rep.returncode == 0 and "Traceback" not in rep.stderr, rep.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 60)
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    con = duckdb.connect(str(db), read_only=True)
    rows = dict(con.execute("select id, worker from requests").fetchall())
    missing = set(ids) - set(rows)
    assert not missing, f"{len(missing)} of {len(ids)} answered requests have no telemetry row"
    assert len(ids) == 160 and len(set(ids)) == 160
    assert {rows[i] for i in ids} == {0, 1}, "both workers served and wrote their rows"


def test_cache_store_batches_keep_order_and_last_write(tmp_path):
    st = CacheStore(str(tmp_path / "c.duckdb"))
    msg = {"content": [{"type": "text", "text": "ok"}]}
    for i in range(300):
        st.put(id=f"e{i % 250}", kind="exact", stage="exact", scope=f"s{i}", message=msg, created=1.0, expires=9e9)
    st.put(id="v", kind="semantic", stage="cache", scope="sc", message=msg, created=1.0, expires=9e9,
           text="q", vector=[0.5] * 8)
    st.delete(["e0"])
    st.put(id="e0", kind="exact", stage="exact", scope="again", message=msg, created=1.0, expires=9e9)
    st.flush()
    rows = {r["id"]: r for r in st.load("exact", "exact")}
    assert len(rows) == 250 and st.errors == 0
    assert rows["e0"]["scope"] == "again"          # the delete, then the re-insert, in order
    assert rows["e10"]["scope"] == "s260"          # the later of two writes to one id wins
    sem = st.load("semantic", "cache")
    assert sem[0]["vector"] == [0.5] * 8 and sem[0]["message"] == msg
    st.release()


def test_bench_bodies_carry_one_marker():
    bodies = workload_bodies()
    for name, body in bodies.items():
        assert body.count(MARK.encode()) == 1, name
        assert MARK.encode() not in fixed(body)
    if "cc62k-loop" in bodies:
        # The loop's next turn: the mark is in a tool's output, the user's last words are unchanged.
        import json

        from lynkr.routing.text import read_conversation
        loop, ask = json.loads(bodies["cc62k-loop"]), json.loads(bodies["cc62k"])
        assert MARK in json.dumps(loop["messages"][-1]["content"][-1]["content"])
        assert read_conversation(loop).ask.startswith("Store.remove lets stock go negative.")
        assert MARK in read_conversation(ask).ask


def test_json_kept_past_the_request_is_right_sized():
    """orjson's output sits in a buffer ~10x its length (lynkr.kit.heap); what caches keep is copied
    out of it. Measured with tracemalloc, which sees the allocation, not len()."""
    import tracemalloc

    import orjson

    from lynkr.kit.heap import kept
    answer = {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}

    def held(make) -> float:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            blobs = [make() for _ in range(200)]
            return (tracemalloc.get_traced_memory()[0] - base) / len(blobs)
        finally:
            tracemalloc.stop()
    assert kept(orjson.dumps(answer)) == orjson.dumps(answer)
    assert held(lambda: kept(orjson.dumps(answer))) < 4 * len(orjson.dumps(answer)) + 64
