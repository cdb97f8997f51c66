"""Fleet telemetry on DuckLake (`telemetry: {lake: {catalog, data_path}}`): real PostgreSQL (Debian's
package, started per test on a free port), real DuckLake and Postgres extensions from the package
index, real `lynkr run` processes.

What these prove: two servers write into one lake and `lynkr report` counts both; every built-in
report over the lake answers what it answers over a local file with the same rows; a catalog
outage spools the rows, which all arrive when it returns; a catalog or a data path that cannot be
used is a one-line start error naming file, YAML path and line.
"""
import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from lynkr.cli import main as lynkr_main
from lynkr.storage.lake import Spool
from lynkr.telemetry.reports import list_reports, run_reports
from lynkr.telemetry.writer import write_file, write_lake
from tests.helpers.postgres_server import PostgresServer, free_port
from tests.helpers.reliability_faults import FaultyUpstream
from tests.helpers.reliability_util import BODY, LynkrProcess, start_upstream
from tests.helpers.reports_seed import known_rows
from tests.helpers.s3_server import s3_server

ROOT = Path(__file__).resolve().parents[1]

PIPE = """
version: 1
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
telemetry:
  path: "{telemetry}"
  flush_interval_s: 0.2
  lake:
    catalog: "{catalog}"
    data_path: "{data_path}"
state_dir: "{state}"
"""


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer()
    server.start()
    yield server
    server.cleanup()


def _pipeline(folder: Path, *, url: str, catalog: str, data_path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "pipeline.yaml"
    p.write_text(PIPE.format(url=url, catalog=catalog, data_path=data_path, telemetry=folder / "telemetry.duckdb",
                             state=folder / "state"))
    return p


def _report(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lynkr.cli", "report", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120)


def _lake_count(pipeline: Path, env: dict | None = None) -> int:
    r = _report("--config", str(pipeline), "--sql", "select count(*) as n from requests", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return out[0]["n"] if out else 0


async def _ask(s: aiohttp.ClientSession, url: str, i: int) -> int:
    body = {**BODY, "model": "ok", "messages": [{"role": "user", "content": f"question {i}"}]}
    async with s.post(url + "/v1/messages", json=body) as r:
        await r.read()
        return r.status


async def _metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
        text = await r.text()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def _until(check, what: str, limit: int = 600):
    """Poll `check` (an async callable returning a truthy value when done), 0.1 s apart."""
    for _ in range(limit):
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


async def test_two_servers_write_one_lake_and_report_counts_every_request(pg, tmp_path):
    """Two `lynkr run` processes (own folders, own writer processes) share one catalog and data
    path; after both stop, `lynkr report --sql "select count(*) from requests"` through either
    pipeline equals the requests both answered, and each server's rows are there."""
    up = FaultyUpstream()
    runner = await start_upstream(up)
    catalog = pg.new_catalog("fleet")
    data = tmp_path / "shared-lake"
    pipes = [_pipeline(tmp_path / name, url=up.url, catalog=catalog, data_path=data) for name in ("a", "b")]
    servers = [LynkrProcess(p) for p in pipes]
    answered = 0
    try:
        await asyncio.gather(*(s.ready() for s in servers))
        banner = servers[0].output()
        assert f"telemetry    lake postgres:" in banner and "password=***" in banner and pg.password not in banner
        async with aiohttp.ClientSession() as s:
            for i in range(30):
                server = servers[0] if i % 3 else servers[1]       # 20 through a, 10 through b
                assert await _ask(s, server.url, i) == 200
                answered += 1
        for server in servers:
            server.signal()
            assert await server.wait() == 0, server.output()
    finally:
        for server in servers:
            server.kill()
        await runner.cleanup()
    assert _lake_count(pipes[1]) == answered == 30
    r = _report("--config", str(pipes[0]), "--sql",
                "select count(*) filter (where stage_id = 'call') as calls, count(distinct request_id) as reqs "
                "from stage_events", "--format", "json")
    assert json.loads(r.stdout) == [{"calls": 30, "reqs": 30}], r.stderr
    assert list(data.glob("**/*.parquet")), "the rows are Parquet files under data_path"


def test_every_builtin_report_over_the_lake_equals_the_local_file(pg, tmp_path, capsys):
    """The hand-worked rows of tests/helpers/reports_seed.py written once into a DuckDB file and once
    into a lake: every built-in report (unchanged SQL) prints the same table over both, the
    dashboard's all-reports call answers the same, and `--sql` reaches `requests`, `stage_events`
    and `prices` by the same names."""
    reqs, evs = known_rows()
    write_file(str(tmp_path / "t.duckdb"), reqs, evs)
    lake = {"catalog": pg.new_catalog("reports"), "data_path": str(tmp_path / "lake")}
    write_lake(lake, reqs, evs, spool_dir=str(tmp_path))
    file_cfg = tmp_path / "file.yaml"
    file_cfg.write_text(f'version: 1\nstages: []\ntelemetry: {{path: "{tmp_path / "t.duckdb"}"}}\n')
    lake_cfg = tmp_path / "lake.yaml"
    lake_cfg.write_text(f'version: 1\nstages: []\ntelemetry:\n  lake: {json.dumps(lake)}\n')

    def run(cfg, *args) -> str:
        assert lynkr_main(["report", *args, "--config", str(cfg), "--format", "json"]) == 0
        return capsys.readouterr().out

    names = list(list_reports())
    assert len(names) >= 10
    for name in names:
        over_file = run(file_cfg, name)
        assert json.loads(over_file), name
        assert run(lake_cfg, name) == over_file, name
    sql = "select count(*) as n, (select count(*) from stage_events) as ev, (select count(*) from prices) > 0 as p from requests"
    assert json.loads(run(lake_cfg, "--sql", sql)) == [{"n": len(reqs), "ev": len(evs), "p": True}]
    # The dashboard's path (all reports on one connection) gives the same over the lake.
    assert run_reports(lake, names) == run_reports(str(tmp_path / "t.duckdb"), names)


def test_reports_over_the_lake_stay_read_only(pg, tmp_path, capsys):
    """`--sql` over the lake refuses writes, and cannot reach files outside the lake's data path."""
    lake = {"catalog": pg.new_catalog("readonly"), "data_path": str(tmp_path / "lake")}
    write_lake(lake, *known_rows(), spool_dir=str(tmp_path))
    cfg = tmp_path / "lake.yaml"
    cfg.write_text(f'version: 1\nstages: []\ntelemetry:\n  lake: {json.dumps(lake)}\n')
    (tmp_path / "secret.csv").write_text("a\n1\n")
    for sql in ("delete from tel.requests", f"select * from read_csv('{tmp_path / 'secret.csv'}')"):
        assert lynkr_main(["report", "--config", str(cfg), "--sql", sql]) == 1
        assert "read-only" in capsys.readouterr().err
    assert lynkr_main(["report", "--config", str(cfg), "--sql", "select count(*) as n from requests",
                       "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 6}]


async def test_catalog_outage_spools_rows_and_all_arrive_when_it_returns(tmp_path):
    """The catalog stops while a server answers: every request is still answered, the rows wait in
    the local spool (counted by lynkr_telemetry_lake_spooled_rows and _failures_total, said in the
    log), and once the catalog is back every row is in the lake: none lost, none twice."""
    pg = PostgresServer()
    pg.start()
    up = FaultyUpstream()
    runner = await start_upstream(up)
    pipe = _pipeline(tmp_path / "a", url=up.url, catalog=pg.catalog, data_path=tmp_path / "lake")
    server = LynkrProcess(pipe)
    try:
        await server.ready()
        async with aiohttp.ClientSession() as s:
            for i in range(10):
                assert await _ask(s, server.url, i) == 200
            await _until(lambda: asyncio.to_thread(lambda: _lake_count(pipe) == 10), "the first 10 rows in the lake")
            pg.stop()
            for i in range(10, 25):
                assert await _ask(s, server.url, i) == 200     # clients never see the outage
            await _until(lambda: _metric(server.url, "lynkr_telemetry_lake_spooled_rows"), "rows in the spool")
            assert await _metric(server.url, "lynkr_telemetry_lake_failures_total") >= 1
            assert list((tmp_path / "a" / "lake-spool").glob("*/*.requests.json"))
            pg.start()

            async def drained():
                return await _metric(server.url, "lynkr_telemetry_lake_spooled_rows") == 0
            await _until(drained, "the spool written after the catalog returned")
            assert await _ask(s, server.url, 99) == 200
        server.signal()
        assert await server.wait() == 0
        assert "spool" in server.output() and "is back" in server.output()
        r = _report("--config", str(pipe), "--sql", "select count(*) as n, count(distinct id) as ids from requests",
                    "--format", "json")
        assert json.loads(r.stdout) == [{"n": 26, "ids": 26}], r.stderr
    finally:
        server.kill()
        await runner.cleanup()
        pg.cleanup()


def _start_error(pipe: Path, env: dict | None = None) -> str:
    r = subprocess.run([sys.executable, "-m", "lynkr.cli", "run", str(pipe), "--port", "0", "--no-reload"],
                       capture_output=True, text=True, timeout=120, cwd=str(pipe.parent),
                       env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    return out


def test_a_catalog_that_refuses_is_a_clear_start_error(pg, tmp_path):
    """A catalog nobody listens on, and one with a wrong password: `lynkr run` exits 1 at once with
    one line naming the file, `telemetry.lake.catalog` and its line (never the password)."""
    closed = free_port()                 # nothing listens there
    cases = {
        "refused": pg.catalog.replace(f"port={pg.port}", f"port={closed}"),
        "password": pg.catalog.replace(f"password={pg.password}", "password=wrong-secret"),
    }
    for name, catalog in cases.items():
        pipe = _pipeline(tmp_path / name, url="http://127.0.0.1:9", catalog=catalog, data_path=tmp_path / "lake")
        out = _start_error(pipe)
        line = pipe.read_text().splitlines().index(f'    catalog: "{catalog}"') + 1
        assert f"{pipe}:{line}: telemetry.lake.catalog: cannot attach the DuckLake catalog" in out, out
        assert "wrong-secret" not in out and pg.password not in out
    assert "refused" in _start_error(tmp_path / "refused" / "pipeline.yaml").lower()
    assert "password" in _start_error(tmp_path / "password" / "pipeline.yaml").lower()


def test_an_unusable_data_path_is_a_clear_start_error(pg, tmp_path):
    """A data path under a regular file, and one other than the path the catalog was created with:
    exit 1 with one line naming `telemetry.lake.data_path` and its line."""
    (tmp_path / "a-file").write_text("x")
    pipe = _pipeline(tmp_path / "file", url="http://127.0.0.1:9", catalog=pg.new_catalog("unwritable"),
                     data_path=tmp_path / "a-file" / "lake")
    out = _start_error(pipe)
    line = next(i for i, t in enumerate(pipe.read_text().splitlines(), 1) if "data_path:" in t)
    assert f"{pipe}:{line}: telemetry.lake.data_path: the data path" in out and "not writable" in out, out

    catalog = pg.new_catalog("moved")
    write_lake({"catalog": catalog, "data_path": str(tmp_path / "first")}, [], [], spool_dir=str(tmp_path))
    pipe = _pipeline(tmp_path / "moved", url="http://127.0.0.1:9", catalog=catalog, data_path=tmp_path / "second")
    out = _start_error(pipe)
    assert f"{pipe}:{line}: telemetry.lake.data_path:" in out and "does not match" in out, out


async def test_an_s3_data_path_holds_the_rows_and_a_missing_bucket_is_a_start_error(pg, tmp_path):
    """`data_path: s3://…` on an S3-compatible store (moto's server; endpoint and keys from the
    standard AWS variables): a server's rows land there as Parquet objects and `lynkr report` reads
    them back; a bucket that does not exist is a start error naming `telemetry.lake.data_path`."""
    up = FaultyUpstream()
    runner = await start_upstream(up)
    try:
        with s3_server() as s3:
            pipe = _pipeline(tmp_path / "a", url=up.url, catalog=pg.new_catalog("objects"), data_path=s3.url("lake/"))
            server = LynkrProcess(pipe, extra_env=s3.env)
            try:
                await server.ready()
                async with aiohttp.ClientSession() as s:
                    for i in range(5):
                        assert await _ask(s, server.url, i) == 200
                server.signal()
                assert await server.wait() == 0, server.output()
            finally:
                server.kill()
            assert _lake_count(pipe, env=s3.env) == 5
            assert any(k.startswith("lake/") and k.endswith(".parquet") for k in s3.keys()), s3.keys()
            bad = _pipeline(tmp_path / "b", url=up.url, catalog=pg.new_catalog("nobucket"),
                            data_path="s3://no-such-bucket/lake/")
            out = _start_error(bad, env=s3.env)
            assert f"{bad}:" in out and "telemetry.lake.data_path: the data path s3://no-such-bucket/lake/" in out, out
    finally:
        await runner.cleanup()


def test_report_over_an_unreachable_catalog_says_so(tmp_path, capsys):
    """`lynkr report` over a lake whose catalog is down: one line and exit 1, no traceback."""
    cfg = tmp_path / "lake.yaml"
    cfg.write_text("version: 1\nstages: []\ntelemetry:\n  lake: {catalog: \"postgres:host=127.0.0.1 port=%d "
                   "dbname=x user=x password=x\", data_path: \"%s\"}\n" % (free_port(), tmp_path / "lake"))
    assert lynkr_main(["report", "savings", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("✗ telemetry.lake.catalog: cannot attach the DuckLake catalog") and "password=***" in err, err


def test_spool_is_bounded_kept_across_restarts_and_never_shared(tmp_path):
    """The spool refuses a batch past its size bound; a new Spool on the same folder (a restarted
    writer) finds the batches left, oldest first; a second live writer gets a folder of its own."""
    def batch(n: int) -> dict:
        files = {}
        for part in ("requests", "events"):
            files[part] = str(tmp_path / f"in-{n}.{part}.json")
            Path(files[part]).write_text("[" + ",".join(["{}"] * n) + "]")
        return files

    first = Spool(str(tmp_path / "spool"), max_bytes=100)
    assert first.add(batch(3), 3) and first.add(batch(5), 5)
    assert not first.add(batch(40), 40)                 # over 100 bytes: refused, nothing moved
    assert Path(tmp_path / "in-40.requests.json").exists()
    other = Spool(str(tmp_path / "spool"), max_bytes=100)
    assert other.folder != first.folder and len(other) == 0
    del first                                           # the writer stops; its lock goes with it
    import gc
    gc.collect()
    again = Spool(str(tmp_path / "spool"), max_bytes=100)
    assert (len(again), again.rows) == (2, 8)
    rows, files = again.oldest()
    assert rows == 3 and Path(files["requests"]).read_text() == "[{},{},{}]"
    again.done()
    assert again.oldest()[0] == 5


def test_a_catalog_refused_by_the_schema_never_shows_its_password(tmp_path, capsys):
    """A catalog that is not `postgres:…` is refused when the file loads, naming the option and
    line, with the connection string's password masked."""
    cfg = tmp_path / "lake.yaml"
    cfg.write_text('version: 1\nstages: []\ntelemetry:\n  lake:\n'
                   '    catalog: "mysql:host=db user=lynkr password=hunter2-secret"\n    data_path: /tmp/x\n')
    assert lynkr_main(["validate", str(cfg)]) == 1
    err = capsys.readouterr()
    out = err.out + err.err
    assert f"{cfg}:5: telemetry.lake.catalog:" in out and "password=***" in out and "hunter2" not in out, out

