"""DuckDB telemetry: rows with pipeline_hash, 0 rows lost across SIGTERM, reports while serving."""
import asyncio
import signal
import subprocess
import sys

import aiohttp
import duckdb

from lynkr.exchange import Exchange, Response, StageEvent
from lynkr.telemetry import TelemetryWriter
from tests.conftest import free_port
from tests.helpers.serve import BODY, PIPE, start_lynkr, wait_ready


def test_writer_writes_rows_and_token_estimates(tmp_path):
    w = TelemetryWriter(str(tmp_path / "t.duckdb"), flush_interval=0.05)
    x = Exchange.new("anthropic", {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]})
    x.response = Response(message={"content": []}, usage={"input_tokens": 7, "output_tokens": 3})
    x.upstream_request = x.request
    ev = StageEvent("s", "toon", measure=("a b c d e f", "a b"))
    x.events.append(ev)
    w.submit(x)
    w.flush()
    w.close()
    con = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
    row = con.execute("select id, tokens_client, tokens_upstream, usage_input, usage_output from requests").fetchone()
    assert row[0] == x.id and row[1] > 0 and row[1] == row[2] and row[3:] == (7, 3)
    before, after = con.execute("select tokens_before, tokens_after from stage_events").fetchone()
    assert before > after > 0


async def _load(url: str, stop: asyncio.Event, ok_ids: list, n_workers=8):
    async def worker(s):
        while not stop.is_set():
            try:
                async with s.post(url + "/v1/messages", json=BODY) as r:
                    await r.read()
                    if r.status == 200:
                        ok_ids.append(r.headers["x-lynkr-request-id"])
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.01)
    async with aiohttp.ClientSession() as s:
        await asyncio.gather(*(worker(s) for _ in range(n_workers)))


async def _serve_under_load(upstream_url: str, tmp_path, n_workers: int):
    """`lynkr run` as a subprocess writing to tmp_path/t.duckdb, with clients hammering it."""
    db = tmp_path / "t.duckdb"
    pipe = tmp_path / "p.yaml"
    pipe.write_text(PIPE % (upstream_url, db))
    port = free_port()
    proc = start_lynkr(pipe, port)
    url = f"http://127.0.0.1:{port}"
    await wait_ready(url, proc)
    stop = asyncio.Event()
    ok_ids: list = []
    load = asyncio.create_task(_load(url, stop, ok_ids, n_workers))
    return db, proc, stop, ok_ids, load


async def test_sigterm_under_load_loses_no_rows(anthropic_upstream, tmp_path):
    proc = None
    try:
        db, proc, stop, ok_ids, load = await _serve_under_load(anthropic_upstream.url, tmp_path, 8)
        await asyncio.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
        stop.set()
        await load
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    assert len(ok_ids) > 20
    con = duckdb.connect(str(db), read_only=True)
    stored = {r[0] for r in con.execute("select id from requests").fetchall()}
    missing = set(ok_ids) - stored
    assert not missing, f"{len(missing)} of {len(ok_ids)} answered requests have no telemetry row"
    hashes = con.execute("select distinct pipeline, pipeline_hash from requests").fetchall()
    assert len(hashes) == 1 and hashes[0][0] == "tele" and len(hashes[0][1]) == 12


async def test_report_works_while_server_runs(anthropic_upstream, tmp_path):
    db, proc, stop, ok_ids, load = await _serve_under_load(anthropic_upstream.url, tmp_path, 4)
    try:
        await asyncio.sleep(1.0)
        loop = asyncio.get_running_loop()
        results = []
        for name in ("by-day", "latency"):
            res = await loop.run_in_executor(None, lambda n=name: subprocess.run(
                [sys.executable, "-m", "lynkr.cli", "report", n, "--db", str(db), "--format", "json"],
                capture_output=True, text=True, timeout=60))
            results.append(res)
        sql = await loop.run_in_executor(None, lambda: subprocess.run(
            [sys.executable, "-m", "lynkr.cli", "report", "--db", str(db), "--sql", "select count(*) as n from requests"],
            capture_output=True, text=True, timeout=60))
        stop.set()
        await load
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    for res in results + [sql]:
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr
    import json
    by_day = json.loads(results[0].stdout)
    assert by_day[0]["requests"] > 0
    assert int(sql.stdout.split()[-1]) > 0


def test_report_rejects_writes_and_bad_sql(tmp_path):
    w = TelemetryWriter(str(tmp_path / "t.duckdb"), flush_interval=0.05)
    w.close()
    db = str(tmp_path / "t.duckdb")
    run = lambda *a: subprocess.run([sys.executable, "-m", "lynkr.cli", "report", "--db", db, *a],
                                    capture_output=True, text=True, timeout=60)
    empty = run("by-day")
    assert empty.returncode == 0 and "no requests yet" in empty.stdout
    bad = run("--sql", "selec 1")
    assert bad.returncode == 1 and "SQL error" in bad.stderr and "Traceback" not in bad.stderr
    write = run("--sql", "delete from tel.requests")
    assert write.returncode == 1 and "Traceback" not in write.stderr
    missing = run("bogus-report")
    assert missing.returncode == 1 and "no report named" in missing.stderr


async def _through_default_stages(tmp_path, body: dict) -> Exchange:
    """A Claude Code request through default.yaml's request stages, as served (no upstream call)."""
    import copy
    import os
    from pathlib import Path

    from lynkr.engine import load_pipeline
    env = {**os.environ, "LYNKR_STATE_DIR": str(tmp_path / "state"), "ANTHROPIC_API_KEY": "k"}
    pipeline = load_pipeline(Path(__file__).parent.parent / "pipelines" / "default.yaml", env)
    body = copy.deepcopy(body)
    x = Exchange.new("anthropic", body, original=body, headers={}, session="s")
    x.pipeline = pipeline
    for step in pipeline.plan.main:
        if step.uses in ("provider_call", "fallback", "semantic_cache"):
            continue
        x.start_stage(step.id, step.uses)
        await step.stage.run(x)
    x.upstream_request = {**x.request, "model": x.request["model"]}
    x.body.json_bytes(x.upstream_request)                # what provider_call serialises
    x.response = Response(message={"content": [{"type": "text", "text": "ok"}]}, usage={"input_tokens": 9})
    return x


async def test_lighten_lets_the_request_go_and_keeps_the_row(tmp_path):
    """The telemetry row of an exchange whose request was let go on the event loop (lighten) is the
    row of the same exchange kept whole: the same token counts, models and stage measures."""
    import json

    from lynkr.telemetry.writer import lighten, note_tokens, rows_for, token_counts
    from lynkr.kit.tokens import gathering
    from tests.conftest import FIXTURES
    body = json.loads((FIXTURES / "claude-code" / "fix-negative-stock" / "req_004.json").read_text())["body"]
    # A new turn: its last message was never counted, so lighten leaves it for the thread.
    turn = {**body, "messages": [*body["messages"], {"role": "assistant", "content": "Done, never seen before."}]}
    for b, noted in ((body, False), (turn, False), (body, True), (turn, True)):
        x = await _through_default_stages(tmp_path, b)
        if noted:                               # what the Anthropic provider does once the body is joined
            note_tokens(x)
            assert x.body.tokens[2] is x.request
        light = lighten(x)
        assert light.request == {} and light.baseline == {} and light.upstream_request is None
        memo: dict = {}
        with gathering():                       # the telemetry thread's two passes
            token_counts(light, memo)
        row, events = rows_for(light, memo=memo)
        if b is turn and not noted:             # (counted by the first pass over `turn` since)
            assert light.body.tokens[0][0][1], "the new message is counted by the telemetry thread"
        expected, expected_events = rows_for(await _through_default_stages(tmp_path, b))
        for k in ("tokens_client", "tokens_upstream", "requested_model", "model", "tier", "score"):
            assert row[k] == expected[k], k
        assert [(e["tokens_before"], e["tokens_after"]) for e in events] == \
               [(e["tokens_before"], e["tokens_after"]) for e in expected_events]
    assert expected["tokens_upstream"] < expected["tokens_client"]     # strip_tools and toon saved some
    # Counts read by note_tokens() are not used for requests replaced afterwards (a fallback): the
    # row reads the requests as they are, whether lighten() ran or not.
    import copy

    from lynkr.kit.tokens import count_request
    replaced = copy.deepcopy(body)
    want = (expected["tokens_client"], count_request(replaced))       # `expected`: `turn` kept whole
    for light in (False, True):
        x = await _through_default_stages(tmp_path, turn)
        note_tokens(x)
        x.request = x.upstream_request = copy.deepcopy(replaced)
        if light:
            x = lighten(x)
        memo = {}
        with gathering():
            token_counts(x, memo)
        assert token_counts(x, memo)[:2] == want
