"""crush: large tool results shrink to what carries information, nothing is lost (lynkr_expand answers
with the original bytes, the client never sees the call), and decisions never change a sent prefix."""
import json
import re
from pathlib import Path

import aiohttp
import orjson
import pytest

from lynkr.savings.expand import EXPAND_NAME, CrushStore
from lynkr.stages import crush as crush_mod
from lynkr.stages.crush import Crush, crush_text
from lynkr.kit.tokens import count_text
from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message, tool_message
from tests.helpers.savings_util import DATA, build_stage, request_with_results, result, run_stage

HANDLE = re.compile(r"\[lynkr crush (c_[0-9a-f]{16})")


def seed_grep() -> tuple[list, str]:
    items = json.loads((DATA / "seed_grep_60.json").read_text())
    return items, json.dumps(items, separators=(",", ":"))


def test_seed_grep_seventy_percent_fewer_and_every_todo_still_there(tmp_path):
    items, compact = seed_grep()
    stage = build_stage(Crush, keep_last=0, state_dir=str(tmp_path))
    x = run_stage(stage, request_with_results([compact], ask="which file has the rate-limiting TODO for carol?"))
    out = result(x.request)
    before, after = count_text(compact), count_text(out)
    assert after <= 0.30 * before, (before, after)
    for it in items:
        assert f"{it['file']},{it['line']}," in out
        assert it["match"] in out                       # the TODO text and its assignee
    assert x.request["tools"][-1]["name"] == EXPAND_NAME
    handle = HANDLE.match(out).group(1)
    assert stage.store.get(handle) == compact           # the original bytes, retrievable
    assert CrushStore(tmp_path / "crush").get(handle) == compact    # and on disk, for a restarted proxy


def pytest_like_output() -> str:
    lines = ["============================= test session starts ==============================",
             "platform linux -- Python 3.11.7, pytest-8.3.3", "collected 312 items", ""]
    for i in range(300):
        lines.append(f"tests/test_api.py::test_endpoint_{i:03d} PASSED                          [{i * 100 // 312:3d}%]")
    lines += ["tests/test_api.py::test_rate_limit_for_carol FAILED", "",
              "=================================== FAILURES ===================================",
              "    def test_rate_limit_for_carol():", ">       assert limiter.allow('carol') is False",
              "E       AssertionError: assert True is False", "tests/test_api.py:88: AssertionError",
              "=========================== short test summary info ============================",
              "FAILED tests/test_api.py::test_rate_limit_for_carol - AssertionError: assert True is False",
              "======================== 1 failed, 300 passed in 4.12s ========================="]
    return "\n".join(lines)


def test_long_text_keeps_failures_first_and_last_lines():
    text = pytest_like_output()
    out, reason, handle = crush_text(text, set(), min_tokens=100, min_saving=0.3, max_rows=80, min_lines=40,
                                     max_chars=10**7)
    assert reason == "crushed" and handle
    assert count_text(out) < 0.3 * count_text(text)
    for must in ("test session starts", "E       AssertionError: assert True is False", "tests/test_api.py:88",
                 "FAILED tests/test_api.py::test_rate_limit_for_carol", "1 failed, 300 passed"):
        assert must in out
    assert "lines elided" in out


def test_rows_beyond_max_rows_keep_errors_rare_values_and_ends():
    rows = [{"id": i, "status": "ok", "msg": f"request {i} served"} for i in range(200)]
    rows[57] = {"id": 57, "status": "error", "msg": "request 57 timed out"}
    rows[120]["status"] = "degraded"
    out, reason, _ = crush_text(json.dumps(rows), set(), min_tokens=100, min_saving=0.3, max_rows=20,
                                min_lines=40, max_chars=10**7)
    assert reason == "crushed"
    body = out.split("\n", 1)[1]
    # A short one-line column is a fact: kept verbatim in every row that stays.
    assert "request 57 timed out" in body and "degraded" in body
    assert "request 0 served" in body and "request 199 served" in body
    assert "rows left out" in out and body.count("served") <= 20


def test_keep_last_and_decisions_are_per_session_and_stable(tmp_path):
    _, big = seed_grep()
    stage = build_stage(Crush, keep_last=1, state_dir=str(tmp_path))
    # Turn n: the grep result is the newest — sent in full.
    turn1 = run_stage(stage, request_with_results([big]), session="s").request
    assert result(turn1) == big
    # Turn n+1: it is no longer the newest, but it was sent in full: it stays in full, same bytes.
    turn2 = run_stage(stage, request_with_results([big, "ok"]), session="s").request
    assert result(turn2) == big
    assert EXPAND_NAME not in {t["name"] for t in turn2.get("tools") or ()}
    # A session the proxy first sees with the result already old (a resumed session): crushed.
    other = run_stage(stage, request_with_results([big, "ok"]), session="t").request
    assert result(other).startswith("[lynkr crush ")
    again = run_stage(stage, request_with_results([big, "ok", "more"]), session="t").request
    assert result(again) == result(other)
    assert again["tools"] == other["tools"]


def test_recrush_after_idle(tmp_path, monkeypatch):
    _, big = seed_grep()
    stage = build_stage(Crush, keep_last=1, recrush_after_idle=300, state_dir=str(tmp_path))
    clock = [1000.0]
    monkeypatch.setattr(crush_mod.time, "time", lambda: clock[0])
    assert result(run_stage(stage, request_with_results([big]), session="s").request) == big
    clock[0] += 10
    assert result(run_stage(stage, request_with_results([big, "ok"]), session="s").request) == big
    clock[0] += 3600                                    # the provider's cache has long expired
    assert result(run_stage(stage, request_with_results([big, "ok"]), session="s").request).startswith("[lynkr crush")


@pytest.mark.parametrize("payload,reason", [
    ("\x00\x01binary\x02" * 2000, "binary"),
    ("x" * 2_500_000, "too_large"),
    ('{"looks like": json but is not' + " word" * 800, "nothing_to_drop"),
    ("short", "small"),
])
def test_bad_input_left_unchanged(tmp_path, payload, reason):
    stage = build_stage(Crush, keep_last=0, min_tokens=100, state_dir=str(tmp_path))
    x = run_stage(stage, request_with_results([payload]))
    assert result(x.request) == payload
    assert x.event(stage.id).detail["decided"] == {reason: 1}
    assert "tools" not in x.request


# -- the lynkr_expand round trip through the proxy -------------------------------------------------

def expanding_upstream():
    """Calls lynkr_expand once for the handle in the request, then answers from what it got back."""
    def script(body):
        last = body["messages"][-1]["content"]
        got = [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"
               and str(b.get("tool_use_id", "")).startswith("toolu_") and "TODO(carol): add rate limiting" in str(b.get("content"))]
        if got and body["messages"][-2]["content"][-1].get("name") == EXPAND_NAME:
            return text_message("The rate-limiting TODO for carol is in the original.")
        for m in body["messages"]:
            for b in m["content"] if isinstance(m["content"], list) else ():
                h = HANDLE.search(str(b.get("content", ""))) if isinstance(b, dict) else None
                if h:
                    return tool_message(EXPAND_NAME, {"handle": h.group(1)}, text="Let me see the full result.")
        return text_message("nothing crushed")
    return AnthropicUpstream(script)


PIPELINE = """
version: 1
name: crush-e2e
state_dir: {state}
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: crush, uses: crush, with: {{keep_last: 0}}}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
"""


@pytest.mark.parametrize("stream", [False, True])
async def test_expand_round_trip_returns_original_bytes_and_client_never_sees_it(
        lynkr, write_pipeline, start_app_upstream, tmp_path, stream):
    up, url = await start_app_upstream(expanding_upstream())
    _, base = await lynkr(write_pipeline(PIPELINE.format(url=url, state=tmp_path / "state")))
    _, compact = seed_grep()
    body = {**request_with_results([compact], names=["Grep"]), "stream": stream}
    async with aiohttp.ClientSession() as s:
        async with s.post(base + "/v1/messages", json=body, headers={"x-api-key": "k"}) as r:
            assert r.status == 200
            raw = await r.read()
    assert len(up.requests) == 2
    first, second = up.requests
    assert HANDLE.search(result(first)) and EXPAND_NAME in {t["name"] for t in first["tools"]}
    answer = second["messages"][-1]["content"][0]
    assert answer["type"] == "tool_result" and answer["content"] == compact       # the original bytes
    text = raw.decode()
    assert EXPAND_NAME not in text
    if stream:
        events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        starts = [e["index"] for e in events if e["type"] == "content_block_start"]
        assert starts == list(range(len(starts))) == [0, 1]
        assert sum(e["type"] == "message_start" for e in events) == 1
        deltas = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        assert "Let me see the full result." in deltas and "carol is in the original" in deltas
        stop = [e for e in events if e["type"] == "message_delta"][-1]
        assert stop["delta"]["stop_reason"] == "end_turn"
    else:
        msg = orjson.loads(raw)
        assert [b["type"] for b in msg["content"]] == ["text", "text"]
        assert msg["stop_reason"] == "end_turn"
        assert "carol is in the original" in msg["content"][-1]["text"]


async def test_expand_alongside_a_client_tool_call_is_hidden(lynkr, write_pipeline, start_app_upstream, tmp_path):
    def script(body):
        msg = tool_message("Bash", {"command": "ls"})
        msg["content"].insert(0, {"type": "tool_use", "id": "toolu_x", "name": EXPAND_NAME, "input": {"handle": "c_0000000000000000"}})
        return msg
    up, url = await start_app_upstream(AnthropicUpstream(script))
    _, base = await lynkr(write_pipeline(PIPELINE.format(url=url, state=tmp_path / "state")))
    _, compact = seed_grep()
    async with aiohttp.ClientSession() as s:
        async with s.post(base + "/v1/messages", json=request_with_results([compact]), headers={"x-api-key": "k"}) as r:
            msg = await r.json()
    assert len(up.requests) == 1
    assert [b["name"] for b in msg["content"] if b["type"] == "tool_use"] == ["Bash"]
    assert msg["stop_reason"] == "tool_use"


@pytest.fixture
async def start_app_upstream():
    from tests.conftest import start_app
    runners = []

    async def start(upstream):
        runner, url = await start_app(upstream.app())
        runners.append(runner)
        return upstream, url
    yield start
    for r in runners:
        await r.cleanup()


async def test_expand_round_trip_for_an_openai_chat_client(lynkr, write_pipeline, start_app_upstream, tmp_path):
    up, url = await start_app_upstream(expanding_upstream())
    _, base = await lynkr(write_pipeline(PIPELINE.format(url=url, state=tmp_path / "state")))
    _, compact = seed_grep()
    body = {"model": "claude-test", "messages": [
        {"role": "user", "content": "which file has the rate-limiting TODO for carol?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "grep", "arguments": "{\"pattern\":\"TODO\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": compact}],
        "tools": [{"type": "function", "function": {"name": "grep", "description": "search files",
                                                    "parameters": {"type": "object", "properties": {}}}}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(base + "/v1/chat/completions", json=body, headers={"authorization": "Bearer k"}) as r:
            assert r.status == 200, await r.text()
            out = await r.json()
    assert len(up.requests) == 2
    assert up.requests[1]["messages"][-1]["content"][0]["content"] == compact
    msg = out["choices"][0]["message"]
    assert "carol is in the original" in msg["content"] and not msg.get("tool_calls")
    assert out["choices"][0]["finish_reason"] == "stop"


def test_sequences_and_constants_are_stated_once():
    rows = [{"id": 10 + 5 * i, "kind": "warning", "rule": f"rule-{i % 7}", "file": f"src/mod_{i}.py"} for i in range(30)]
    out, reason, _ = crush_text(json.dumps(rows, indent=2), set(), min_tokens=100, min_saving=0.3, max_rows=80,
                                min_lines=40, max_chars=10**7)
    assert reason == "crushed"
    head, body = out.split("\n", 1)
    assert "id = 10, 15, … 155 in row order" in head and 'kind="warning" in every row' in head
    assert "warning" not in body and "rule-6" in body and "src/mod_29.py" in body


SHAPES = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "grep_shapes.json"


@pytest.mark.parametrize("name", list(json.loads(SHAPES.read_text())))
def test_grep_like_results_of_any_field_names_lose_70_percent_and_no_fact(name):
    """Search results shaped three ways (context as lists of lines, nested LSP-like ranges, nested
    repository/file objects with URLs): crushed by at least 70 % of their tokens, and every row's
    path, line, matched text and id still there — verbatim, or after the folder the header states."""
    shape = json.loads(SHAPES.read_text())[name]
    compact = json.dumps(shape["result"], separators=(",", ":"))
    out, reason, handle = crush_text(compact, set(), min_tokens=400, min_saving=0.3, max_rows=80, min_lines=40,
                                     max_chars=10**7)
    assert reason == "crushed"
    assert count_text(out) <= 0.3 * count_text(compact)
    prefixes = re.findall(r'= "([^"]*)…" in every row', out.split("\n", 1)[0])
    for row in shape["facts"]:
        for fact in row:
            assert fact in out or any(fact.startswith(p) and fact[len(p):] in out for p in prefixes), fact


def test_redundant_columns_are_stated_once_and_facts_kept():
    """A column equal to another, a URL that is another column in a fixed frame, a constant column
    and a context that holds the row's match (in no fixed frame) are stated once or left out; the
    rest stays."""
    rows = [{"id": f"r{i}", "path": f"lib/m{i % 7}.py", "url": f"https://x.test/blob/main/lib/m{i % 7}.py",
             "start": 10 + i * i % 97, "end": 10 + i * i % 97, "tool": "scan", "match": f"def handler_{i}(event):",
             "context": f"import {'os' if i % 2 else 'sys'}\n\ndef handler_{i}(event):\n    return {i % 5}\n"}
            for i in range(30)]
    out, reason, _ = crush_text(json.dumps(rows), set(), min_tokens=100, min_saving=0.3, max_rows=80,
                                min_lines=40, max_chars=10**7)
    head, body = out.split("\n", 1)
    assert reason == "crushed"
    assert 'url = "https://x.test/blob/main/{path}" in every row' in head
    assert "start = end in every row" in head and 'tool="scan" in every row' in head
    assert "'context' left out (it holds 'match'" in head
    for r in rows:
        assert f"{r['id']},{r['path']},{r['end']},\"{r['match']}\"" in body
