"""toon: lossless, never larger than compact JSON, deterministic, and harmless on bad input."""
import json

import pytest
import toon_format
from hypothesis import given, settings
from hypothesis import strategies as st

from lynkr.stages.toon import Toon, encode
from lynkr.kit.tokens import count_text
from tests.helpers.savings_util import DATA, build_stage, request_with_results, result
from tests.helpers.savings_util import run_stage as run


def decoded(text: str):
    """What the model gets back out of a payload, whichever form the stage chose."""
    if text.startswith("[TOON"):
        return toon_format.decode(text.split("\n", 1)[1])
    return json.loads(text)


def test_seed_grep_never_larger_than_compact_json_and_lossless():
    items = json.loads((DATA / "seed_grep_60.json").read_text())
    compact = json.dumps(items, separators=(",", ":"))
    out, how = encode(compact)
    assert count_text(out) <= count_text(compact)
    assert decoded(out) == items
    assert how.startswith("toon")


def test_choice_is_deterministic_and_memoised():
    stage = build_stage(Toon)
    payload = json.dumps([{"id": i, "name": f"item {i}", "ok": i % 2 == 0} for i in range(30)], indent=2)
    a = run(stage, request_with_results([payload])).request
    b = run(build_stage(Toon), request_with_results([payload])).request
    c = run(stage, request_with_results([payload])).request       # memo hit
    assert json.dumps(a) == json.dumps(b) == json.dumps(c)


uniform_rows = st.integers(5, 25).flatmap(lambda n: st.lists(
    st.fixed_dictionaries({
        "name": st.text(min_size=0, max_size=12),
        "count": st.integers(-10**6, 10**6),
        "ratio": st.floats(allow_nan=False, allow_infinity=False, width=32),
        "ok": st.booleans(),
        "note": st.one_of(st.none(), st.text(max_size=8)),
    }), min_size=n, max_size=n))


@settings(max_examples=60, deadline=None)
@given(uniform_rows)
def test_uniform_arrays_never_larger_than_compact_json_and_exact(rows):
    compact = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
    out, how = encode(compact)
    assert count_text(out) <= count_text(compact)
    # Exact: same types (True is not 1, 1.0 is not 1) and the same key order.
    assert json.dumps(decoded(out)) == json.dumps(rows)


def test_only_tool_results_change():
    stage = build_stage(Toon, min_chars=10)
    payload = json.dumps([{"a": i, "b": "x"} for i in range(20)], indent=2)
    req = request_with_results([payload])
    user_json = json.dumps([{"k": i} for i in range(20)], indent=2)
    req["messages"].append({"role": "user", "content": [{"type": "text", "text": user_json}]})
    req["tools"] = [{"name": "t", "description": "d", "input_schema": {"type": "object", "properties": {}}}]
    x = run(stage, req)
    assert x.request["tools"] == req["tools"]
    assert x.request["messages"][1] == req["messages"][1]                # tool_use input untouched
    assert x.request["messages"][-1]["content"][0]["text"] == user_json   # what the user typed
    assert result(x.request) != payload
    assert x.baseline is req and result(req) == payload                   # copy-on-write
    assert x.event(stage.id).measure is not None


def test_text_blocks_inside_tool_result_and_other_keys_kept():
    stage = build_stage(Toon, min_chars=10)
    payload = json.dumps([{"a": i, "b": "x"} for i in range(20)], indent=2)
    req = request_with_results([[{"type": "text", "text": payload}, {"type": "text", "text": "plain words"}]])
    req["messages"][2]["content"][0]["cache_control"] = {"type": "ephemeral"}
    x = run(stage, req)
    block = x.request["messages"][2]["content"][0]
    assert block["cache_control"] == {"type": "ephemeral"}
    assert block["content"][1]["text"] == "plain words"
    assert decoded(block["content"][0]["text"]) == json.loads(payload)


def test_small_payloads_left_alone():
    stage = build_stage(Toon, min_chars=500)
    payload = json.dumps([{"a": 1}, {"a": 2}], indent=2)
    x = run(stage, request_with_results([payload]))
    assert result(x.request) == payload


@pytest.mark.parametrize("payload,reason", [
    ('{"looks": "like json", "but": }' + " " * 300, "not_json"),
    ("[" * 5000 + "]" * 5000, "too_deep"),
    ('[{"a": NaN}]' + " " * 300, "not_json"),
    ('{"a": 1, "a": 2, "pad": "' + "x" * 300 + '"}', "not_json"),       # duplicate keys: not lossless
    ("[\x00\x01\x02\x03" + "\x04" * 400 + "]", "binary"),
])
def test_bad_input_left_unchanged_with_reason(payload, reason):
    stage = build_stage(Toon, min_chars=10)
    x = run(stage, request_with_results([payload]))
    assert result(x.request) == payload
    assert x.event(stage.id).detail["how"] == {reason: 1}


def test_five_megabyte_result_left_alone():
    stage = build_stage(Toon, max_chars=2_000_000)
    payload = json.dumps([{"line": "x" * 100, "n": i} for i in range(50_000)])
    assert len(payload) > 5_000_000
    x = run(stage, request_with_results([payload]))
    assert result(x.request) is payload
    assert x.event(stage.id).detail["how"] == {"too_large": 1}
