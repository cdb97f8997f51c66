"""strip_tools: the tools the model calls are there when it calls them; the kept set only grows in a
session; schema minification never drops semantics."""
import copy
import json
from pathlib import Path

import pytest
import yaml

from lynkr.cli.explain import load_request_file, protocol_for
from lynkr.savings.tools import minify_tool
from lynkr.stages.strip_tools import StripTools
from tests.conftest import FIXTURES, ROOT
from tests.helpers.savings_util import build_stage, run_stage


def default_options() -> dict:
    cfg = yaml.safe_load((ROOT / "pipelines" / "default.yaml").read_text())
    return next(s.get("with") or {} for s in cfg["stages"] if s["uses"] == "strip_tools")


def sessions():
    return sorted({p.parent for p in FIXTURES.rglob("req_*.json")})


def canonical(path: Path) -> dict:
    route, _headers, body = load_request_file(str(path))
    return protocol_for(route).to_canonical(body)


def names(tools) -> set[str]:
    return {t.get("name") for t in tools or () if isinstance(t, dict)}


def called_after(prev: dict, nxt: dict) -> set[str]:
    """Tools the model called in answer to `prev`: tool_use blocks `nxt` adds to the history."""
    out = set()
    for msg in nxt["messages"][len(prev["messages"]):]:
        if msg.get("role") == "assistant" and isinstance(msg.get("content"), list):
            out |= {b["name"] for b in msg["content"] if b.get("type") == "tool_use"}
    return out


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
@pytest.mark.parametrize("session", sessions(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_tool_the_model_called_was_kept_when_it_called_it(session):
    stage = build_stage(StripTools, **default_options())
    reqs = [canonical(p) for p in sorted(session.glob("req_*.json"))]
    sent = [run_stage(stage, r, session=session.name).request for r in reqs]
    script = session / "upstream_script.json"
    checked = 0
    for i in range(len(reqs) - 1):
        for name in called_after(reqs[i], reqs[i + 1]):
            assert name in names(sent[i]["tools"]), f"{session.name} turn {i}: {name} was stripped"
            checked += 1
    if script.is_file():        # the last answer of a Claude Code session
        steps = json.loads(script.read_text())
        last = steps[min(len(reqs) - 1, len(steps) - 1)]
        if last.get("type") == "tool":
            assert last["name"] in names(sent[-1]["tools"])
    assert checked, "the session should call tools"
    assert len(sent[0]["tools"]) < len(reqs[0]["tools"]), "something situational should be dropped"


def tools_fixture():
    path = next(FIXTURES.glob("claude-code/*/req_000.json"))
    return canonical(path)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
def test_kept_set_only_grows_within_a_session():
    base = tools_fixture()
    stage = build_stage(StripTools, keep=["Bash", "Read"])
    first = run_stage(stage, base, session="s1").request
    assert "ScheduleWakeup" not in names(first["tools"])
    later = copy.deepcopy(base)
    later["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "ok"}]})
    later["messages"].append({"role": "user", "content": [{"type": "text", "text": "schedule a wakeup in an hour"}]})
    grown = run_stage(stage, later, session="s1").request
    assert "ScheduleWakeup" in names(grown["tools"])
    assert names(first["tools"]) <= names(grown["tools"])
    # A later request that no longer carries that text (the client compacted its history) keeps it.
    again = run_stage(stage, base, session="s1").request
    assert names(grown["tools"]) == names(again["tools"])
    # Another session starts from scratch.
    other = run_stage(stage, base, session="s2").request
    assert "ScheduleWakeup" not in names(other["tools"])
    # Order is the client's.
    order = [t["name"] for t in base["tools"]]
    assert [t["name"] for t in grown["tools"]] == [n for n in order if n in names(grown["tools"])]


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
def test_always_kept_tools():
    base = copy.deepcopy(tools_fixture())
    base["tool_choice"] = {"type": "tool", "name": "Workflow"}
    base["tools"].append({"type": "web_search_20250305", "name": "web_search", "max_uses": 3})
    stage = build_stage(StripTools, keep=["Bash"])
    out = names(run_stage(stage, base).request["tools"])
    assert {"Bash", "Workflow", "ToolSearch", "DeferredToolPlaceholder", "web_search"} <= out
    assert "ScheduleWakeup" not in out


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
def test_user_words_keep_matching_tools_and_reminders_do_not_count():
    base = copy.deepcopy(tools_fixture())
    base["messages"][0]["content"].append({"type": "text", "text": "Please review the diff and report findings."})
    out = names(run_stage(build_stage(StripTools, keep=["Bash"]), base).request["tools"])
    assert "ReportFindings" in out
    base = copy.deepcopy(tools_fixture())
    base["messages"][0]["content"].append(
        {"type": "text", "text": "<system-reminder>review findings report</system-reminder>fix the bug"})
    out = names(run_stage(build_stage(StripTools, keep=["Bash"]), base).request["tools"])
    assert "ReportFindings" not in out


def test_tools_used_earlier_are_kept():
    tools = [{"name": n, "description": f"{n} does things", "input_schema": {"type": "object", "properties": {}}}
             for n in ("Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta")]
    req = {"model": "m", "max_tokens": 10, "tools": tools, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "go"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Gamma", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]}]}
    out = names(run_stage(build_stage(StripTools), req).request["tools"])
    assert out == {"Gamma"}


def test_few_tools_left_alone():
    tools = [{"name": n, "description": "x", "input_schema": {"type": "object"}} for n in ("A", "B", "C")]
    req = {"model": "m", "max_tokens": 10, "tools": tools, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert names(run_stage(build_stage(StripTools), req).request["tools"]) == {"A", "B", "C"}


def _semantic_keys(value, path=()):
    """Every (path, key) of the keywords minification must never drop."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("properties", "required", "enum", "anyOf", "oneOf", "allOf", "items", "type", "default",
                     "additionalProperties", "const", "minimum", "maximum", "pattern", "format"):
                out.add((path, k, json.dumps(v, sort_keys=True) if k != "properties" else tuple(v)))
            out |= _semantic_keys(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out |= _semantic_keys(v, path + (i,))
    return out


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
def test_minify_is_lossless_on_real_tools():
    saved = 0
    for path in FIXTURES.rglob("req_000.json"):
        for tool in canonical(path).get("tools") or ():
            small = minify_tool(tool)
            assert small["name"] == tool["name"] and small.get("description") == tool.get("description")
            schema = tool.get("input_schema")
            if isinstance(schema, dict):
                a, b = _semantic_keys(schema), _semantic_keys(small["input_schema"])
                assert a == b, tool["name"]
                assert "$schema" not in small["input_schema"]
                saved += len(json.dumps(schema)) - len(json.dumps(small["input_schema"]))
    assert saved > 0


def test_minify_drops_repeats_only():
    tool = {"name": "t", "description": "Find things.", "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": {"query": {"title": "Query", "type": "string", "description": "Find things."},
                       "mode": {"title": "Search mode", "enum": ["a", "b"], "description": "which mode"},
                       "opt": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}},
        "required": ["query"]}}
    small = minify_tool(tool)["input_schema"]
    assert small == {"type": "object", "properties": {
        "query": {"type": "string"},
        "mode": {"title": "Search mode", "enum": ["a", "b"], "description": "which mode"},
        "opt": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}}, "required": ["query"]}
    assert tool["input_schema"]["$schema"]          # the client's object is not mutated


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
def test_embedder_keeps_a_tool_the_words_do_not_name(monkeypatch):
    import os
    if not os.environ.get("LYNKR_EMBED_MODEL_PATH"):
        pytest.skip("no local embedding model")
    base = copy.deepcopy(tools_fixture())
    base["messages"][0]["content"][-1] = {
        "type": "text", "text": "Come back to this every ten minutes and keep polling the deploy until it finishes."}
    words_only = names(run_stage(build_stage(StripTools, keep=["Bash"]), base).request["tools"])
    assert "ScheduleWakeup" not in words_only
    stage = build_stage(StripTools, keep=["Bash"], embed_threshold=0.25)
    x = run_stage(stage, base)
    assert "ScheduleWakeup" in names(x.request["tools"])
    assert x.event(stage.id).detail["kept_for"] == {"ScheduleWakeup": "embedding"}


def _tool(name, description):
    return {"name": name, "description": description,
            "input_schema": {"$schema": "x", "type": "object", "properties": {"q": {"title": "Q", "type": "string"}}}}


SITUATIONAL = [_tool(n, d) for n, d in (
    ("Alpha", "Core."), ("Beta", "Core."), ("Gamma", "Core."), ("Delta", "Core."),
    ("Scheduler", "Arrange periodic wakeups for background pollers."),
    ("Notebook", "Edit jupyter cells."))]


def _ask(*texts):
    return {"model": "m", "max_tokens": 10, "tools": SITUATIONAL,
            "messages": [{"role": "user", "content": [{"type": "text", "text": t} for t in texts]}]}


def test_keywords_from_different_texts_add_up_and_remembered_words_decide_alike():
    stage = build_stage(StripTools, keep=["Alpha", "Beta", "Gamma", "Delta"])
    # "periodic" in one text and "wakeups" in another: two keywords of Scheduler's description.
    req = _ask("make it periodic", "with wakeups")
    req["messages"] = [req["messages"][0] | {"content": [req["messages"][0]["content"][0]]},
                       {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
                       {"role": "user", "content": [req["messages"][0]["content"][1]]}]
    assert "Scheduler" in names(run_stage(stage, req).request["tools"])
    fresh = build_stage(StripTools, keep=["Alpha", "Beta", "Gamma", "Delta"])
    for i in range(3):              # new texts with remembered words; a cold stage agrees each time
        for s in (stage, fresh):
            out = names(run_stage(s, _ask(f"edit the jupyter cells ({i})")).request["tools"])
            assert "Notebook" in out and "Scheduler" not in out
        fresh = build_stage(StripTools, keep=["Alpha", "Beta", "Gamma", "Delta"])
    assert "Notebook" not in names(run_stage(stage, _ask("edit the readme")).request["tools"])


def test_measure_is_the_json_of_the_tools_before_and_after_and_minified_tools_are_shared():
    import orjson
    stage = build_stage(StripTools, keep=["Alpha", "Beta", "Gamma", "Delta"])
    first = run_stage(stage, copy.deepcopy(_ask("hello")))
    second = run_stage(stage, copy.deepcopy(_ask("hello again")))
    for x in (first, second):
        before, after = x.event(stage.id).measure
        assert before == orjson.dumps(x.baseline["tools"]).decode()
        assert after == orjson.dumps(x.request["tools"]).decode()
        assert names(x.request["tools"]) == {"Alpha", "Beta", "Gamma", "Delta"}
        assert all("$schema" not in t["input_schema"] for t in x.request["tools"])
    # The same tool JSON minifies to the very same object on every request (nothing mutates it).
    assert all(a is b for a, b in zip(first.request["tools"], second.request["tools"]))
    # A tool minification leaves alone stays the client's own object.
    plain = [{"name": n, "description": "d", "input_schema": {"type": "object"}} for n in ("A", "B", "C", "D", "E")]
    x = run_stage(build_stage(StripTools, keep=["A", "B", "C", "D", "E"]), {"model": "m", "max_tokens": 5, "tools": plain,
                  "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    assert x.request is x.baseline and x.event("strip_tools").measure is None


def test_a_tool_list_read_once_decides_every_request_as_a_cold_stage_would():
    import orjson
    keep = ["Alpha", "Beta", "Gamma", "Delta"]
    stage = build_stage(StripTools, keep=keep)
    asks = [("s1", "hello"), ("s2", "edit the jupyter cells"), ("s3", "periodic wakeups for the pollers"),
            ("s4", "edit the jupyter cells and arrange periodic wakeups")]
    for session, text in asks:
        x = run_stage(stage, copy.deepcopy(_ask(text)), session=session)
        cold = run_stage(build_stage(StripTools, keep=keep), copy.deepcopy(_ask(text)), session=session)
        assert names(x.request["tools"]) == names(cold.request["tools"])
        before, after = x.event(stage.id).measure
        assert before == orjson.dumps(x.baseline["tools"]).decode()
        assert after == orjson.dumps(x.request["tools"]).decode()
    # A session keeps what it was sent, with the list read once.
    assert "Notebook" in names(run_stage(stage, copy.deepcopy(_ask("thanks")), session="s2").request["tools"])
    # Another list (a tool added) is read afresh; the tools minification leaves alone are the
    # request's own objects, the others shared minified ones.
    req = copy.deepcopy(_ask("hello"))
    req["tools"] = req["tools"] + [{"name": "Extra", "description": "d", "input_schema": {"type": "object"}}]
    x = run_stage(stage, req)
    sent = {t["name"]: t for t in x.request["tools"]}
    assert "Extra" not in sent and sent["Alpha"] is not req["tools"][0]
    assert orjson.dumps(x.request["tools"]).decode() == x.event(stage.id).measure[1]
