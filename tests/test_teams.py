"""Client keys with names, teams, limits and model allow-lists (`keys:`, `teams:`): load-time
checks, refusals in each client's protocol, charging of provider-reported usage, sharing of the
counters by the workers of `lynkr run`."""
import asyncio
import contextlib
import hashlib
import os

import aiohttp
import anthropic
import openai
import orjson
import pytest

from lynkr.config.loader import load_config
from lynkr.errors import ConfigError
from tests.conftest import free_port
from tests.helpers.reliability_util import BODY, OPENAI_BODY, lynkr_app, post
from tests.helpers.serve import start_lynkr, wait_ready


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


BASE = """
version: 1
providers:
  up: {kind: anthropic, base_url: "%s"}
models:
  claude-x: {input: 1000, output: 0}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""


def pipe_with(url: str, keys_yaml: str) -> str:
    return BASE % url + keys_yaml


# -- load-time checks ---------------------------------------------------------------------------

BAD = [
    ("keys:\n  a:\n    secret_sha256: \"abc123\"\n", "64 hex digits", "abc123"),
    ("keys:\n  a:\n    secret: s3cret-long-enough\n    limits: {rpm: -1}\n", "minimum", "rpm"),
    ("keys:\n  a:\n    secret: s3cret-long-enough\n    limits: {usd_per_day: lots}\n", "not of type", "lots"),
    ("keys:\n  a:\n    secret: s3cret-long-enough\n    team: paymnts\nteams:\n  payments: {}\n", "team 'paymnts'", "paymnts"),
    ("keys:\n  a:\n    secret: s3cret-long-enough\n    models: [\"openai:*\"]\n", "matches no provider", "openai"),
]


@pytest.mark.parametrize("yaml_tail,words,marker", BAD)
def test_bad_keys_are_refused_at_load_with_file_and_line(tmp_path, yaml_tail, words, marker):
    """A malformed hash, a negative or non-number limit, an unknown team and a model glob matching no
    provider each stop the load with an error naming the file and the line."""
    p = tmp_path / "p.yaml"
    text = pipe_with("http://127.0.0.1:9", yaml_tail)
    p.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if marker in t)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert words in str(e.value)
    assert e.value.file == str(p) and e.value.line == line, str(e.value)


def test_keys_check_reads_keys_teams_and_api_keys(tmp_path):
    """`server.api_keys` keep working as keys without limits, next to named keys with teams."""
    from lynkr.config.keys import client_keys, team_limits
    p = tmp_path / "p.yaml"
    p.write_text(pipe_with("http://127.0.0.1:9", f"""
server: {{api_keys: ["plain-key-0123456789"]}}
keys:
  alice: {{secret_sha256: "{sha('alice-secret')}", team: payments, limits: {{rpm: 60}}, models: ["up:claude-*"]}}
teams:
  payments: {{limits: {{usd_per_month: 500}}}}
"""))
    cfg = load_config(p)
    keys = {k.name: k for k in client_keys(cfg.data)}
    assert keys["alice"].team == "payments" and keys["alice"].limits == {"rpm": 60}
    assert keys["api_keys[0]"].limits == {} and keys["api_keys[0]"].digest == hashlib.sha256(b"plain-key-0123456789").digest()
    assert team_limits(cfg.data, "payments") == {"usd_per_month": 500}


# -- at the door --------------------------------------------------------------------------------

async def test_missing_unknown_and_two_keys_get_401_counted_never_logged(anthropic_upstream, write_pipeline, tmp_path, caplog):
    secret = "alice-0123456789abcdef"
    pipe = write_pipeline(pipe_with(anthropic_upstream.url, f'keys:\n  alice: {{secret_sha256: "{sha(secret)}"}}\n'))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        for headers in ({}, {"x-api-key": "nope-0123456789"},
                        {"x-api-key": secret, "authorization": "Bearer other-0123456789"}):
            status, _, body = await post(url, headers=headers)
            assert status == 401 and orjson.loads(body)["error"]["type"] == "authentication_error"
        status, _, body = await post(url, "/v1/chat/completions", OPENAI_BODY)
        assert status == 401 and orjson.loads(body)["error"]["type"] in ("authentication_error", "invalid_request_error")
        status, _, _ = await post(url, headers={"x-api-key": secret, "authorization": f"Bearer {secret}"})
        assert status == 200
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
            metrics = await r.text()
    assert 'lynkr_key_refusals_total{key="(none)",outcome="unauthorized"} 4' in metrics
    assert 'lynkr_key_requests_total{key="alice",team="",status="200"} 1' in metrics
    assert secret not in caplog.text and secret not in metrics


async def test_rpm_refusal_is_a_429_with_retry_after_in_each_protocol(anthropic_upstream, write_pipeline, tmp_path):
    """Past its rpm a key gets 429 rate_limit_error with retry-after, in the Anthropic, OpenAI Chat and
    Responses shapes, as the official SDKs read them."""
    secret = "rpm-key-0123456789abcdef"
    pipe = write_pipeline(pipe_with(anthropic_upstream.url,
                                    f'keys:\n  rpmkey: {{secret: "{secret}", limits: {{rpm: 1}}}}\n'))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        ok = await anthropic.AsyncAnthropic(base_url=url, api_key=secret, max_retries=0).messages.create(**BODY)
        assert ok.content
        with pytest.raises(anthropic.RateLimitError) as e:
            await anthropic.AsyncAnthropic(base_url=url, api_key=secret, max_retries=0).messages.create(**BODY)
        assert e.value.body["error"]["type"] == "rate_limit_error"
        assert "key rpmkey: rate limit of 1 requests per minute" in e.value.message
        assert int(e.value.response.headers["retry-after"]) >= 1
        oa = openai.AsyncOpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.RateLimitError) as e:
            await oa.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": "hi"}])
        assert "rpm" not in e.value.message or "requests per minute" in e.value.message
        with pytest.raises(openai.RateLimitError):
            await oa.responses.create(model="claude-x", input="hi")


async def test_budget_is_charged_from_a_streamed_answer_and_refused_in_words(anthropic_upstream, write_pipeline, tmp_path):
    """A streamed answer's final usage is priced with the pipeline's prices and charged when it ends;
    the next request is refused with a sentence naming the budget and when it resets, not retried."""
    secret = "budget-key-0123456789abcdef"
    pipe = write_pipeline(pipe_with(anthropic_upstream.url,
                                    f'keys:\n  bob: {{secret: "{secret}", team: t1, limits: {{usd_per_day: 0.01}}}}\n'
                                    'teams:\n  t1: {}\n'))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        client = anthropic.AsyncAnthropic(base_url=url, api_key=secret, max_retries=0)
        async with client.messages.stream(**BODY) as stream:       # 10 input tokens at $1000/M = $0.01
            final = await stream.get_final_message()
        assert final.usage.input_tokens == 10
        with pytest.raises(anthropic.APIStatusError) as e:
            await client.messages.create(**BODY)
        assert e.value.status_code == 402
        assert e.value.message.endswith("key bob: daily budget $0.01 reached, resets 00:00 UTC") or \
            "key bob: daily budget $0.01 reached, resets 00:00 UTC" in str(e.value.body)
        assert e.value.response.headers["x-should-retry"] == "false"


async def test_team_budget_applies_to_all_its_keys(anthropic_upstream, write_pipeline, tmp_path):
    a, b = "team-a-0123456789abcdef", "team-b-0123456789abcdef"
    pipe = write_pipeline(pipe_with(anthropic_upstream.url, f"""keys:
  ta: {{secret: "{a}", team: t2}}
  tb: {{secret: "{b}", team: t2}}
teams:
  t2: {{limits: {{usd_per_month: 0.01}}}}
"""))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        assert (await post(url, headers={"x-api-key": a}))[0] == 200
        status, _, body = await post(url, headers={"x-api-key": b})
        assert status == 402
        assert "team t2: monthly budget $0.01 reached, resets" in orjson.loads(body)["error"]["message"]


async def test_a_model_outside_the_allow_list_is_403_naming_the_globs(anthropic_upstream, write_pipeline, tmp_path):
    secret = "models-key-0123456789abcdef"
    pipe = write_pipeline(pipe_with(anthropic_upstream.url,
                                    f'keys:\n  carol: {{secret: "{secret}", models: ["up:claude-sonnet-*"]}}\n'))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        status, _, body = await post(url, headers={"x-api-key": secret})
        assert status == 403
        err = orjson.loads(body)["error"]
        assert err["type"] == "permission_error" and "up:claude-sonnet-*" in err["message"]
        status, _, _ = await post(url, body={**BODY, "model": "claude-sonnet-4-5"}, headers={"x-api-key": secret})
        assert status == 200
    assert len(anthropic_upstream.requests) == 1


# -- shared by the workers ------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def lynkr_run(tmp_path, pipeline: str, *args: str):
    """`lynkr run` (its writer process included) serving `pipeline`; yields (url, process)."""
    pipe = tmp_path / "p.yaml"
    pipe.write_text(pipeline + f'telemetry: {{path: "{tmp_path}/t.duckdb"}}\n')
    port = free_port()
    proc = start_lynkr(pipe, port, args=args)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, proc)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(30)


async def test_rpm_is_shared_by_four_workers(anthropic_upstream, tmp_path):
    """4 workers of `lynkr run` admit a key's rpm once between them, not 4 times: 100 +- 2 of a
    burst of 400."""
    secret = "burst-key-0123456789abcdef"
    # One address sends all 400 at once: the per-peer caps (256 a worker) are not what is measured here,
    # and a worker may still be starting when the burst comes, leaving the others more than their share.
    pipeline = pipe_with(anthropic_upstream.url, f'keys:\n  burst: {{secret: "{secret}", limits: {{rpm: 100}}}}\n'
                                                 "server: {max_connections_per_peer: 1000, max_in_flight_per_peer: 1000}\n")
    async with lynkr_run(tmp_path, pipeline, "--workers", "4") as (url, _):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as s:
            async def one():
                async with s.post(url + "/v1/messages", json=BODY, headers={"x-api-key": secret}) as r:
                    await r.read()
                    return r.status
            statuses = await asyncio.gather(*(one() for _ in range(400)))
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    assert 98 <= statuses.count(200) <= 102, statuses.count(200)


# -- attribution and the CLI ------------------------------------------------------------------------

async def test_requests_carry_key_and_team_names_and_reports_group_by_them(anthropic_upstream, write_pipeline, tmp_path):
    """Telemetry rows name the key and its team (never the secret); `by-key` and `by-team` sum them."""
    from lynkr.telemetry.reports import run_reports
    a, b = "attr-a-0123456789abcdef", "attr-b-0123456789abcdef"
    pipe = write_pipeline(pipe_with(anthropic_upstream.url, f"""keys:
  dana: {{secret: "{a}", team: web}}
  eli: {{secret: "{b}"}}
teams:
  web: {{}}
"""))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        for key in (a, a, b):
            assert (await post(url, headers={"x-api-key": key}))[0] == 200
    tele = str(tmp_path / "telemetry.duckdb")      # lynkr_app's; written by the time the engine stops
    out = run_reports(tele, ["by-key", "by-team"], config=load_config(pipe).data)     # its prices
    by_key = {r[0]: dict(zip(out["by-key"]["columns"], r)) for r in out["by-key"]["rows"]}
    assert by_key["dana"]["requests"] == 2 and by_key["dana"]["team"] == "web"
    assert by_key["eli"]["requests"] == 1
    assert by_key["dana"]["usd_spent"] == pytest.approx(0.02)      # 2 x 10 input tokens at $1000/M
    by_team = {r[0]: r for r in out["by-team"]["rows"]}
    assert by_team["web"][1] == 2 and by_team["(none)"][1] == 1
    import duckdb
    con = duckdb.connect(tele, read_only=True)
    dump = str(con.execute("SELECT * FROM requests").fetchall())
    con.close()
    assert a not in dump and b not in dump


def test_keys_new_prints_a_secret_whose_hash_loads(tmp_path, capsys):
    """`lynkr keys new` prints a secret once and YAML lines with its sha256; pasted into a pipeline,
    `lynkr keys check` reads the key, its team and limits."""
    from lynkr.cli import main
    assert main(["keys", "new", "frank", "--team", "ops"]) == 0
    out = capsys.readouterr().out
    secret = out.split("\n")[1].strip()
    assert secret.startswith("lk-") and sha(secret) in out
    lines = out.split("pipeline lines:\n")[1]
    p = tmp_path / "p.yaml"
    p.write_text(pipe_with("http://127.0.0.1:9", lines.replace("  keys:", "keys:", 1).replace("\n  ", "\n")
                           + "teams:\n  ops: {limits: {usd_per_month: 50}}\n"))
    assert main(["keys", "check", str(p)]) == 0
    out = capsys.readouterr().out
    assert "frank team ops: no limits; all models" in out
    assert "ops: usd_per_month $50.00; keys: frank" in out


# -- the dashboard's per-key table -----------------------------------------------------------------

async def test_dashboard_data_has_per_key_spend_refusals_and_live_counters(anthropic_upstream, write_pipeline, tmp_path):
    """The dashboard's data carries the by-key and by-team reports (requests, tokens, USD per key and
    team), the refusals at the door per key (which never reach telemetry) and each limited key's
    live counters; the secrets appear nowhere in it."""
    a, b = "dash-a-0123456789abcdef", "dash-b-0123456789abcdef"
    # Counters are kept by key name for the life of the process: a limited key here has a name no
    # other test of this process limits (tests/test_dashboard_browser.py limits `dana`).
    pipe = write_pipeline(pipe_with(anthropic_upstream.url, f"""keys:
  dora: {{secret: "{a}", team: web, limits: {{rpm: 2}}}}
  eli: {{secret: "{b}"}}
teams:
  web: {{}}
server: {{admin_token: "dash-admin-0123456789"}}
dashboard: {{enabled: true}}
"""))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        statuses = [(await post(url, headers={"x-api-key": key}))[0] for key in (a, a, a, b)]
        assert statuses == [200, 200, 429, 200]
        await asyncio.get_running_loop().run_in_executor(None, app["engine"].writer.flush)
        async with aiohttp.ClientSession() as s, s.get(url + "/dashboard/api/data",
                                                       headers={"authorization": "Bearer dash-admin-0123456789"}) as r:
            assert r.status == 200
            text = await r.text()
    data = orjson.loads(text)
    by_key = {row[0]: dict(zip(data["reports"]["by-key"]["columns"], row)) for row in data["reports"]["by-key"]["rows"]}
    assert by_key["dora"]["requests"] == 2 and by_key["dora"]["team"] == "web" and by_key["eli"]["requests"] == 1
    assert by_key["dora"]["usd_spent"] == pytest.approx(0.02) and by_key["dora"]["usage_input"] == 20
    by_team = {row[0]: dict(zip(data["reports"]["by-team"]["columns"], row)) for row in data["reports"]["by-team"]["rows"]}
    assert by_team["web"]["requests"] == 2
    assert data["keys"]["refusals"] == {"dora": {"refused_rate": 1}}
    assert data["keys"]["live"]["key:dora"]["rpm"] == 2 and data["keys"]["live"]["key:dora"]["in_flight"] == 0
    assert a not in text and b not in text


# -- tpm, max_concurrent and the overshoot of a budget ----------------------------------------------

async def test_tpm_counts_the_tokens_of_answers_that_ended_in_the_window(anthropic_upstream, write_pipeline, tmp_path):
    """tpm is the provider-reported tokens (input + output) of the answers that ended in the last
    60 s: under it a request is admitted, at or over it the next is a 429 naming the limit and what
    was used, with a retry-after within the window."""
    secret = "tpm-key-0123456789abcdef"
    pipe = write_pipeline(pipe_with(anthropic_upstream.url, f'keys:\n  tina: {{secret: "{secret}", limits: {{tpm: 25}}}}\n'))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        first = [(await post(url, headers={"x-api-key": secret}))[0] for _ in range(2)]   # 13 tokens each
        status, headers, body = await post(url, headers={"x-api-key": secret})
    assert first == [200, 200]
    assert status == 429 and orjson.loads(body)["error"]["type"] == "rate_limit_error"
    assert "key tina: 25 tokens per minute reached (26 in the last 60 s)" in orjson.loads(body)["error"]["message"]
    assert 1 <= int(headers["retry-after"]) <= 60
    assert len(anthropic_upstream.requests) == 2


async def test_max_concurrent_and_a_budget_overshoot_bounded_by_the_requests_in_flight(write_pipeline, tmp_path):
    """A key with usd_per_day 0.01 and max_concurrent 3 sends 5 requests at once while the upstream
    holds them: 3 are admitted, 2 get a 429 naming max_concurrent. The 3 answers ($0.01 each) end
    after the budget was crossed by the first, so it is overshot by the 2 others that were already
    in flight, no more; the next request is refused with the budget sentence."""
    from tests.helpers.reliability_util import GatedUpstream, start_upstream

    up = GatedUpstream()
    runner = await start_upstream(up)
    secret = "overshoot-key-0123456789abcdef"
    pipe = write_pipeline(pipe_with(up.url, f'keys:\n  olga: {{secret: "{secret}", '
                                            'limits: {usd_per_day: 0.01, max_concurrent: 3}}\n'))
    try:
        async with lynkr_app(pipe, tmp_path) as (app, url):
            burst = [asyncio.create_task(post(url, headers={"x-api-key": secret})) for _ in range(5)]
            await up.wait_arrived(3)
            while sum(t.done() for t in burst) < 2:          # the two refused come back at once
                await asyncio.sleep(0.01)
            turned_away = [t for t in burst if t.done()]
            up.release()
            answered = await asyncio.gather(*(t for t in burst if t not in turned_away))
            refused = [t.result() for t in turned_away]
            spent = (await asyncio.get_running_loop().run_in_executor(None, ledger_snapshot))["key:olga"]["usd_day"]
            status, _, body = await post(url, headers={"x-api-key": secret})
    finally:
        await runner.cleanup()
    assert [r[0] for r in refused] == [429, 429]
    assert all("key olga: 3 requests already in flight (max_concurrent)" in orjson.loads(r[2])["error"]["message"]
               for r in refused)
    assert [r[0] for r in answered] == [200, 200, 200] and up.arrived == 3
    assert spent == pytest.approx(0.03), "charged every answer that was in flight: overshoot = 2 requests"
    assert status == 402 and "key olga: daily budget $0.01 reached" in orjson.loads(body)["error"]["message"]


def ledger_snapshot():
    from lynkr.teams import ledger
    return ledger.snapshot()


# -- what a limit check costs, and its order ------------------------------------------------------

def test_periods_follow_the_utc_day_and_month_in_any_order():
    """The date and month a charge is booked under are those of its own time, however calls for
    different days interleave (they are formatted once a day, not per call)."""
    from datetime import datetime, timezone
    from lynkr.teams.ledger import periods
    eve = datetime(2026, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc).timestamp()
    for t in (eve, eve + 0.5, eve - 86400, eve + 0.5, eve + 0.49, eve + 86400 * 40):
        d = datetime.fromtimestamp(t, timezone.utc)
        day, month, dt = periods(t)
        assert (day, month) == (d.strftime("%Y-%m-%d"), d.strftime("%Y-%m")) and (dt.year, dt.month) == (d.year, d.month)


async def test_a_release_sent_on_one_channel_precedes_an_admission_sent_after_it_on_another(monkeypatch):
    """Two workers' channels to the writer process, a key with max_concurrent 1: each request is
    admitted on one channel and released on it without waiting, then the next is admitted on the
    other at once. The release always counts first, so none of 300 alternations is refused."""
    from lynkr.storage import db_service
    monkeypatch.delenv(db_service.ENV, raising=False)
    proc = db_service.start_service()
    assert proc is not None
    try:
        a, b = await db_service.connect_channel(), await db_service.connect_channel()
        scopes = [["key", "seq", {"max_concurrent": 1}]]
        refused = []
        for i in range(300):
            ch = (a, b)[i % 2]
            r = await ch.request("teams.admit", "", {"now": 1e9 + i, "scopes": scopes})
            if r is not None:
                refused.append((i, r["limit"]))
            ch.send("teams.release", "", {"now": 1e9 + i, "scopes": [["key", "seq"]]})
        live = await a.request("teams.snapshot", "", {"now": 1e9 + 300})
        a.close()
        b.close()
    finally:
        db_service.stop_service(proc)
    assert refused == []
    assert live["key:seq"]["in_flight"] == 0


async def test_admissions_go_on_in_the_worker_when_the_writer_process_is_gone(monkeypatch):
    """Counted in the writer process over the worker's channel; when that process dies, the next
    admissions and releases are counted in the worker instead of failing the request."""
    from lynkr.storage import db_service
    from lynkr.teams import ledger
    monkeypatch.delenv(db_service.ENV, raising=False)
    proc = db_service.start_service()
    assert proc is not None and not ledger.here()
    scopes = [["key", "gone", {"rpm": 1000}]]
    try:
        assert await ledger.admit_async(scopes) is None
        ledger.release_soon([["key", "gone"]], tokens=5)
        assert (await ledger.snapshot_async())["key:gone"] == {"rpm": 1, "tpm": 5, "in_flight": 0, "usd_day": 0.0,
                                                               "usd_month": 0.0}
        proc.kill()
        proc.wait()
        assert await ledger.admit_async(scopes) is None
        ledger.release_soon([["key", "gone"]], tokens=7)
    finally:
        db_service.stop_service(proc)
    assert (await ledger.snapshot_async())["key:gone"]["tpm"] == 7       # this process's counters from then on


async def test_sequential_clients_at_max_concurrent_are_never_refused_by_two_workers(anthropic_upstream, tmp_path):
    """A key with max_concurrent 1 under `lynkr run --workers 2`: a client that sends each request
    as soon as it has the previous answer, on a new connection (so the two workers take turns), is
    admitted every time: a request's release reaches the counters before its client has the answer."""
    secret = "seq-key-0123456789abcdef"
    pipeline = pipe_with(anthropic_upstream.url, f'keys:\n  seq: {{secret: "{secret}", limits: {{max_concurrent: 1}}}}\n')
    async with lynkr_run(tmp_path, pipeline, "--workers", "2") as (url, _):
        statuses = [(await post(url, headers={"x-api-key": secret}))[0] for _ in range(60)]
    assert statuses == [200] * 60


async def test_one_worker_counts_in_itself_exactly_and_its_dashboard_reads_those_counters(anthropic_upstream, tmp_path):
    """`lynkr run` with one worker keeps the counters in that worker, not in its writer process:
    streamed answers one after another under max_concurrent 1 are all admitted (each release is
    done before the next request is read), the dashboard's live counters are those counters, and
    with the writer process killed the key's rpm 5 still refuses the 6th request."""
    import signal
    import subprocess
    secret, admin = "solo-key-0123456789abcdef", "solo-admin-0123456789"
    pipeline = (pipe_with(anthropic_upstream.url, f'keys:\n  solo: {{secret: "{secret}", limits: {{rpm: 5, max_concurrent: 1}}}}\n')
                + f'server: {{admin_token: "{admin}"}}\ndashboard: {{enabled: true}}\n')
    async with lynkr_run(tmp_path, pipeline) as (url, proc):
        statuses = [(await post(url, body={**BODY, "stream": True}, headers={"x-api-key": secret}))[0] for _ in range(5)]
        async with aiohttp.ClientSession() as s, s.get(url + "/dashboard/api/data",
                                                       headers={"authorization": f"Bearer {admin}"}) as r:
            live = orjson.loads(await r.read())["keys"]["live"]
        writers = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "lynkr.storage.db_service"],
                                 capture_output=True, text=True).stdout.split()
        assert len(writers) == 1
        os.kill(int(writers[0]), signal.SIGKILL)
        sixth = await post(url, headers={"x-api-key": secret})
    assert statuses == [200] * 5
    assert live["key:solo"]["rpm"] == 5 and live["key:solo"]["in_flight"] == 0
    assert sixth[0] == 429 and "key solo: rate limit of 5 requests per minute" in orjson.loads(sixth[2])["error"]["message"]
