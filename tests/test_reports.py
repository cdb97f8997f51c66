"""`lynkr report`: every built-in report's numbers on a telemetry file of known requests
(tests/helpers/reports_seed.py; the expected values are worked out by hand there), prices at
query time, --since/--pipeline/--format, --sql safety, empty files, and --export to Parquet."""
import hashlib
import json

import duckdb
import pytest

from lynkr.cli import main
from lynkr.telemetry.pricing import PriceTable, normalize_model
from lynkr.telemetry.reports import list_reports
from lynkr.telemetry.writer import TelemetryWriter
from tests.helpers.reports_seed import seed, write_pipeline

ALL = ["by-day", "by-model", "cache", "errors", "latency", "pipelines", "savings", "stages", "tiers"]


@pytest.fixture
def seeded(tmp_path):
    db = seed(tmp_path / "t.duckdb")
    return db, write_pipeline(tmp_path, db)


def report(capsys, *args) -> list[dict]:
    assert main(["report", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def by(rows, key):
    return {r[key]: r for r in rows}


def test_lists_every_builtin_report(capsys):
    assert set(ALL) <= set(list_reports())       # other areas add their own (cache-stages)
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ALL) and "_priced" not in out


def test_savings_by_stage_and_total(seeded, capsys):
    _db, cfg = seeded
    rows = by(report(capsys, "savings", "--config", cfg), "stage")
    # r3 was answered by the exact cache: its whole baseline (2000 in × $10 + 40 out × $30 per M).
    assert rows["cache"]["uses"] == "exact_cache" and rows["cache"]["requests"] == 1
    assert rows["cache"]["tokens_saved"] == 2000 and rows["cache"]["usd_saved"] == pytest.approx(0.0212)
    # trim took r1 from 1000 to 800 tokens at big-model's $10/M, scaled to the provider's count (800/800).
    assert rows["trim"]["tokens_saved"] == 200 and rows["trim"]["usd_saved"] == pytest.approx(0.002)
    # r2 routed to small-model (saves 0.0059) and r5 to a local model (saves 0.0058).
    assert rows["(model routing)"]["requests"] == 2
    assert rows["(model routing)"]["usd_saved"] == pytest.approx(0.0117)
    total = rows["TOTAL"]
    assert total["requests"] == 5                       # the 529 is not a saving
    assert total["tokens_saved"] == 2200 and total["tokens_saved_pct"] == 55.0
    assert total["usd_saved"] == pytest.approx(0.0349)
    assert total["usd_saved_pct"] == pytest.approx(round(100 * 0.0349 / 0.04662, 1))
    assert list(rows)[-1] == "TOTAL"


def test_by_day_and_since(seeded, capsys):
    _db, cfg = seeded
    days = report(capsys, "by-day", "--config", cfg)
    assert [d["requests"] for d in days] == [1, 5]
    today = days[1]
    assert today["errors"] == 1 and today["tokens_saved"] == 2200
    assert today["cost_usd"] == pytest.approx(0.011 + 0.0006)
    assert today["baseline_usd"] == pytest.approx(0.013 + 0.0065 + 0.0212 + 0.0058)
    assert days[0]["cost_usd"] == pytest.approx(0.00012) and days[0]["saved_usd"] == 0
    recent = report(capsys, "by-day", "--config", cfg, "--since", "7d")
    assert [d["requests"] for d in recent] == [5]


def test_by_model(seeded, capsys):
    _db, cfg = seeded
    rows = {(r["provider"], r["model"]): r for r in report(capsys, "by-model", "--config", cfg)}
    big = rows[("up", "big-model")]
    assert big["requests"] == 2 and big["errors"] == 1 and big["cost_usd"] == pytest.approx(0.011)
    assert big["latency_p50_ms"] == 200.0           # median of 100 and 300
    small = rows[("up", "small-model")]
    assert small["requests"] == 2 and small["cost_usd"] == pytest.approx(0.0006 + 0.00012)
    assert rows[("local", "qwen2.5-coder:7b")]["cost_usd"] == 0
    assert rows[("(none)", "(none)")]["cache_hits"] == 1
    assert all(r["priced"] in (True, None) for r in rows.values())


def test_tiers_cache_latency_errors_pipelines_stages(seeded, capsys):
    _db, cfg = seeded
    tiers = report(capsys, "tiers", "--config", cfg)
    assert [t["tier"] for t in tiers] == ["SIMPLE", "MEDIUM", "COMPLEX", "(none)"]
    t = by(tiers, "tier")
    assert t["SIMPLE"]["share_pct"] == 16.7 and t["SIMPLE"]["models"] == "up:small-model"
    assert t["SIMPLE"]["cost_usd"] == pytest.approx(0.0006) and t["SIMPLE"]["saved_usd"] == pytest.approx(0.0059)
    assert t["(none)"]["requests"] == 3

    cache = by(report(capsys, "cache", "--config", cfg), "cache")
    assert cache["exact"]["hit"] is True and cache["exact"]["share_pct"] == 16.7
    assert cache["exact"]["tokens_saved"] == 2000 and cache["miss"]["requests"] == 5

    lat = by(report(capsys, "latency", "--config", cfg), "measure")
    assert list(lat) == ["total", "ttfb", "upstream", "overhead"]
    assert lat["total"]["requests"] == 6 and lat["total"]["p50"] == 250.0 and lat["total"]["max"] == 500.0
    assert lat["total"]["p95"] == 475.0 and lat["total"]["p99"] == 495.0
    assert lat["upstream"]["requests"] == 5 and lat["upstream"]["p50"] == 290.0
    assert lat["overhead"]["p50"] == 15.0

    errors = report(capsys, "errors", "--config", cfg)
    assert len(errors) == 1 and errors[0]["status"] == 529 and errors[0]["requests"] == 1

    pipes = by(report(capsys, "pipelines", "--config", cfg), "pipeline_hash")
    assert pipes["h1"]["requests"] == 5 and pipes["h2"]["requests"] == 1
    assert pipes["h2"]["saved_usd"] == pytest.approx(0.0058) and pipes["h2"]["usd_saved_pct"] == 100.0
    assert pipes["h1"]["tokens_saved"] == 2200

    stages = by(report(capsys, "stages", "--config", cfg), "stage_id")
    assert stages["trim"]["tokens_saved"] == 200 and stages["call"]["failed"] == 1


def test_a_price_fix_reprices_history(seeded, capsys, tmp_path):
    db, cfg = seeded
    before = by(report(capsys, "by-model", "--config", cfg), "model")["big-model"]["cost_usd"]
    cheaper = tmp_path / "cheaper.yaml"
    cheaper.write_text(open(cfg).read().replace("big-model: {input: 10, output: 30", "big-model: {input: 5, output: 15"))
    after = by(report(capsys, "by-model", "--config", str(cheaper)), "model")["big-model"]["cost_usd"]
    assert before == pytest.approx(0.011) and after == pytest.approx(0.0055)
    # The user's own SQL sees the same priced columns and the prices table.
    rows = report(capsys, "--config", cfg, "--sql",
                  "select model, input, source from prices where provider = 'up' order by model")
    assert rows == [{"model": "big-model", "input": 10.0, "source": "pipeline"},
                    {"model": "small-model", "input": 1.0, "source": "pipeline"}]


def test_builtin_prices_without_a_pipeline(tmp_path, capsys):
    from tests.helpers.reports_seed import _req
    db = seed(tmp_path / "t.duckdb", [_req("a", requested="claude-sonnet-4-5-20250929", model="claude-sonnet-4-5-20250929",
                                            tc=1000, tu=1000, ui=1000, uo=100)], [])
    rows = report(capsys, "by-model", "--db", db)
    assert rows[0]["cost_usd"] == pytest.approx((1000 * 3 + 100 * 15) / 1e6) and rows[0]["priced"] is True


def test_pricing_names_and_precedence():
    assert normalize_model("openrouter/anthropic/claude-sonnet-4.5") == "claude-sonnet-4-5"
    assert normalize_model("us.anthropic.claude-haiku-4-5-20251001-v1:0") == "claude-haiku-4-5"
    table = PriceTable({"models": {"claude-sonnet-4-5": {"input": 1, "output": 2}},
                        "providers": {"box": {"kind": "ollama"}}})
    assert table.price("claude-sonnet-4-5-20250929") == ({"input": 1.0, "output": 2.0, "cache_read": 1.0,
                                                           "cache_write": 1.0, "cache_write_1h": 1.0}, "pipeline")
    assert table.price("anything", "box")[0]["output"] == 0.0
    p, src = table.price("gpt-4o-mini")
    assert src in ("catalog", "fallback") and p["input"] == pytest.approx(0.15)
    assert table.price("no-such-model-xyz") == (None, "")


def test_formats_and_filters(seeded, capsys):
    db, cfg = seeded
    assert main(["report", "savings", "--db", db, "--config", cfg, "--format", "csv"]) == 0
    csv_out = capsys.readouterr().out.splitlines()
    assert csv_out[0] == "stage,uses,requests,tokens_saved,tokens_saved_pct,usd_saved,usd_saved_pct,lever,tokens_cached,usd_cost"
    assert csv_out[-1].startswith("TOTAL,,5,2200,55.0,")
    assert main(["report", "tiers", "--config", cfg, "--format", "markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| tier | requests |") and md[1].startswith("|---")
    assert main(["report", "savings", "--config", cfg]) == 0
    table = capsys.readouterr().out
    assert "TOTAL" in table and "(model routing)" in table
    assert main(["report", "by-day", "--config", cfg, "--pipeline", "other"]) == 0
    assert capsys.readouterr().out.strip() == "no requests yet"
    assert main(["report", "by-day", "--db", db, "--since", "yesterday"]) == 1
    assert "--since takes a duration" in capsys.readouterr().err


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_sql_errors_and_writes_leave_the_file_untouched(seeded, capsys):
    db, _cfg = seeded
    before = _digest(db)
    cases = {
        "selec 1": "SQL error",
        "select nope from requests": "SQL error",
        "delete from requests": "read-only",
        "insert into tel.requests (id) values ('x')": "read-only",
        "update tel.main.requests set status = 1": "read-only",
        "drop table tel.requests": "read-only",
        "select 1; delete from tel.requests": "read-only",
        "copy requests to '/tmp/lynkr-report-leak.csv'": "read-only",
        f"attach '{db}' as w": "read-only",
        "select * from read_csv('/etc/passwd')": "read-only",
    }
    for sql, expected in cases.items():
        assert main(["report", "--db", db, "--sql", sql]) == 1, sql
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (sql, err)
    assert _digest(db) == before
    assert main(["report", "--db", db, "--sql", "select count(*) as n from requests"]) == 0
    assert capsys.readouterr().out.split()[-1] == "6"


def test_empty_and_missing_telemetry_say_no_requests_yet(tmp_path, capsys):
    w = TelemetryWriter(str(tmp_path / "empty.duckdb"))
    w.close()
    for name in ALL:
        assert main(["report", name, "--db", str(tmp_path / "empty.duckdb")]) == 0
        assert capsys.readouterr().out.startswith("no requests yet"), name
    assert main(["report", "savings", "--db", str(tmp_path / "missing.duckdb")]) == 0
    assert capsys.readouterr().out.startswith("no requests yet")
    assert main(["report", "savings", "--db", str(tmp_path / "empty.duckdb"), "--format", "json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
    (tmp_path / "zero.duckdb").write_bytes(b"")
    assert main(["report", "savings", "--db", str(tmp_path / "zero.duckdb")]) == 0
    assert capsys.readouterr().out.startswith("no requests yet")
    (tmp_path / "junk.duckdb").write_text("not a database")
    assert main(["report", "savings", "--db", str(tmp_path / "junk.duckdb")]) == 1
    assert "cannot open" in capsys.readouterr().err


def test_export_parquet_and_merge_instances(tmp_path, capsys):
    a = seed(tmp_path / "a.duckdb")
    from tests.helpers.reports_seed import known_rows
    reqs, evs = known_rows()
    for r in reqs:
        r["id"] = "b-" + r["id"]
    for e in evs:
        e["request_id"] = "b-" + e["request_id"]
    b = seed(tmp_path / "b.duckdb", reqs, evs)
    before = _digest(a)
    assert main(["report", "--db", a, "--export", str(tmp_path / "exp" / "a")]) == 0
    out = capsys.readouterr().out
    assert "requests.parquet: 6 rows" in out and "stage_events.parquet: 13 rows" in out
    assert main(["report", "--db", b, "--export", str(tmp_path / "exp" / "b"), "--since", "7d"]) == 0
    assert "requests.parquet: 5 rows" in capsys.readouterr().out
    assert _digest(a) == before
    con = duckdb.connect()
    glob = str(tmp_path / "exp" / "*" / "requests.parquet")
    n, ids = con.execute(f"select count(*), count(distinct id) from read_parquet('{glob}')").fetchone()
    assert (n, ids) == (11, 11)
    cols = [d[0] for d in con.execute(f"select * from read_parquet('{glob}') limit 0").description]
    assert "cost_usd" not in cols and "tokens_client" in cols     # raw tables; prices belong to the reader


async def test_end_to_end_request_is_priced_from_the_catalogue(anthropic_upstream, write_pipeline, lynkr, tmp_path, capsys):
    import asyncio

    import aiohttp
    db = tmp_path / "e2e.duckdb"
    pipe = write_pipeline(f"""
version: 1
name: e2e
providers:
  up: {{kind: anthropic, base_url: "{anthropic_upstream.url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
telemetry: {{path: "{db}", flush_interval_s: 0.05}}
""")
    engine, url = await lynkr(pipe, telemetry_path=str(db))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "price me"}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/messages", json=body) as r:
            assert r.status == 200
    loop = asyncio.get_running_loop()
    for _ in range(100):
        if engine.writer.written >= 1:
            break
        await loop.run_in_executor(None, engine.writer.flush)
    rows = await loop.run_in_executor(None, lambda: report(capsys, "by-model", "--config", str(pipe)))
    assert rows[0]["provider"] == "up" and rows[0]["model"] == "claude-sonnet-4-5"
    # The upstream reports 10 input tokens and 3 output tokens ("Hello from upstream.").
    assert rows[0]["cost_usd"] == pytest.approx((10 * 3.0 + 3 * 15.0) / 1e6)
    savings = by(await loop.run_in_executor(None, lambda: report(capsys, "savings", "--config", str(pipe))), "stage")
    assert savings["TOTAL"]["requests"] == 1 and savings["TOTAL"]["tokens_saved"] == 0
    assert savings["TOTAL"]["usd_saved"] == pytest.approx(0.0, abs=1e-12)
