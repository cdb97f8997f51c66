"""Prefix stability: replaying a multi-turn session, turn n+1 repeats byte for byte everything turn n
sent upstream (tools, system, every message up to turn n's last) — or the provider's prompt cache
stops hitting and the savings cost money."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lynkr.cli.replay import prefix_violations, replay_sessions
from tests.conftest import FIXTURES, ROOT
from tests.helpers.savings_util import DATA, request_with_results


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
def test_every_fixture_session_is_prefix_stable_through_the_default_pipeline():
    rep = replay_sessions(str(FIXTURES), str(ROOT / "pipelines" / "default.yaml"))["a"]
    assert len(rep["sessions"]) >= 2
    for sess in rep["sessions"]:
        for r in sess["requests"]:
            assert r["violations"] == [], (sess["session"], r["request"], r["violations"])
    assert rep["total"]["upstream_tokens"] < rep["total"]["client_tokens"]


def write_session(folder, turns: list[dict]):
    folder.mkdir(parents=True, exist_ok=True)
    for i, body in enumerate(turns):
        (folder / f"req_{i:03d}.json").write_text(json.dumps(
            {"path": "/v1/messages", "headers": {"x-claude-code-session-id": folder.name}, "body": body}))


def growing_session(n: int = 6) -> list[dict]:
    """An agent loop: each turn appends a tool call and its result (big JSON, logs, small text)."""
    grep = json.dumps(json.loads((DATA / "seed_grep_60.json").read_text()), separators=(",", ":"))
    log = "\n".join([f"2026-11-26T10:{i // 60:02d}:{i % 60:02d} INFO worker {i % 7} handled job {i}" for i in range(200)]
                    + ["2026-11-26T10:03:20 ERROR worker 3 lost the database connection"])
    pool = [grep, log, "ok", json.dumps([{"id": i, "state": "running"} for i in range(40)], indent=2), "done", grep + " "]
    tools = [{"name": n, "description": f"{n} tool", "input_schema": {"$schema": "x", "type": "object", "properties": {}}}
             for n in ("Bash", "Read", "Grep", "ScheduleWakeup", "Workflow", "ReportFindings")]
    turns = []
    for k in range(1, n + 1):
        body = request_with_results(pool[:k], ask="find the rate-limiting TODO for carol")
        body["tools"] = tools
        body["system"] = [{"type": "text", "text": "You are a coding agent."}]
        body["messages"][-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}   # moves every turn
        turns.append(body)
    return turns


PIPELINE = """
version: 1
name: all-savings
providers:
  up: {{kind: anthropic, base_url: "http://127.0.0.1:9"}}
stages:
  - {{id: tools, uses: strip_tools, with: {{keep: [Bash, Read]}}}}
  - {{id: crush, uses: crush, with: {{keep_last: {keep_last}, min_tokens: 200}}}}
  - {{id: json, uses: toon}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
"""


@pytest.mark.parametrize("keep_last", [0, 1, 2])
def test_all_savings_stages_are_prefix_stable_on_a_growing_session(tmp_path, keep_last):
    write_session(tmp_path / "sess", growing_session())
    p = tmp_path / "p.yaml"
    p.write_text(PIPELINE.format(keep_last=keep_last))
    rep = replay_sessions(str(tmp_path / "sess"), str(p))["a"]
    rows = rep["sessions"][0]["requests"]
    assert all(r["violations"] == [] for r in rows), [r["violations"] for r in rows]
    saved = rep["total"]["stages"]
    assert saved.get("crush", 0) > 0 if keep_last == 0 else saved.get("json", 0) > 0


BAD_STAGE = '''
import itertools
from lynkr.stage import Stage

class Churn(Stage):
    """Rewrites the oldest message differently on every turn: exactly what breaks a prompt cache."""
    name = "test_churn"
    counter = itertools.count()

    async def run(self, x):
        msgs = list(x.request["messages"])
        first = dict(msgs[0])
        first["content"] = [{"type": "text", "text": f"turn {next(self.counter)}"}]
        msgs[0] = first
        x.request = {**x.request, "messages": msgs}
'''


def test_replay_catches_a_stage_that_rewrites_history(tmp_path):
    write_session(tmp_path / "sess", growing_session(3))
    (tmp_path / "churn.py").write_text(BAD_STAGE)
    p = tmp_path / "p.yaml"
    p.write_text("""
version: 1
name: churn
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:9"}
stages:
  - {id: churn, uses: ./churn.py:Churn}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
""")
    rep = replay_sessions(str(tmp_path / "sess"), str(p))["a"]
    rows = rep["sessions"][0]["requests"]
    assert rows[0]["violations"] == []
    assert rows[1]["violations"] == ["message 0"] and rows[2]["violations"] == ["message 0"]
    assert rep["total"]["violations"] == 2


def test_cache_control_moves_are_not_violations_but_client_rewrites_are_reported_apart():
    a = request_with_results(["x"])
    b = request_with_results(["x", "y"])
    a["messages"][-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    assert prefix_violations(a, b) == []
    c = request_with_results(["changed", "y"])
    assert prefix_violations(a, c) == ["message 2"]


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=6), c, max_size=6),
                           max_leaves=30)
odd_content = st.one_of(
    st.text(max_size=300), json_values.map(json.dumps), json_values,
    st.lists(st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=200)}),
                       st.dictionaries(st.text(max_size=5), json_values, max_size=3)), max_size=3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(odd_content, min_size=1, max_size=4), tools=st.lists(json_values, max_size=6))
def test_savings_stages_never_raise_on_odd_shapes(tmp_path, payloads, tools):
    from lynkr.stages.crush import Crush
    from lynkr.stages.strip_tools import StripTools
    from lynkr.stages.toon import Toon
    from tests.helpers.savings_util import build_stage, run_stage
    req = request_with_results(payloads)
    req["tools"] = tools
    for stage in (build_stage(StripTools, min_tools=0), build_stage(Toon, min_chars=0),
                  build_stage(Crush, keep_last=0, min_tokens=0, state_dir=str(tmp_path))):
        x = run_stage(stage, req)
        json.dumps(x.request)           # still a JSON body


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
async def test_the_upstream_body_is_orjsons_bytes_and_the_same_every_time(lynkr, monkeypatch, tmp_path):
    """The Anthropic upstream body is joined from the parts' JSON the stages made (lynkr.body
    Body.json_bytes): it must be what orjson.dumps gives, and a resent request must send the same bytes.
    The answer calls a tool, so the exact cache keys both requests (its parts' JSON) and stores neither."""
    import orjson

    from tests.conftest import serving
    from tests.helpers.anthropic_upstream import AnthropicUpstream, tool_message

    upstream = AnthropicUpstream(lambda body: tool_message("Bash", {"command": "ls"}))
    async with serving(upstream):
        monkeypatch.setenv("ANTHROPIC_UPSTREAM_URL", upstream.url)
        monkeypatch.setenv("LYNKR_STATE_DIR", str(tmp_path / "state"))
        _, url = await lynkr(ROOT / "pipelines" / "default.yaml")
        await _send_twice(url)
    first, second = upstream.raw
    assert first == orjson.dumps(orjson.loads(first)) and first == second
    capture = json.loads((FIXTURES / "claude-code" / "fix-negative-stock" / "req_004.json").read_text())
    assert len(orjson.loads(first)["tools"]) < len(capture["body"]["tools"])    # strip_tools' list, joined too


async def _send_twice(url):
    import aiohttp
    import orjson

    capture = json.loads((FIXTURES / "claude-code" / "fix-negative-stock" / "req_004.json").read_text())
    headers = {k: v for k, v in capture["headers"].items() if k.lower() not in ("content-length", "host")}
    async with aiohttp.ClientSession() as s:
        for _ in range(2):
            async with s.post(url + "/v1/messages", data=orjson.dumps({**capture["body"], "stream": False}),
                              headers={**headers, "content-type": "application/json"}) as r:
                assert r.status == 200, await r.text()
                assert r.headers.get("x-lynkr-cache") != "exact"
