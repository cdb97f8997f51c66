"""exact_key remembers each part's digest by the part's JSON: the key must not depend on the memo
(cold or warm), on key order, or on where one part ends and the next begins."""
import copy

import pytest

from lynkr.body import Body
from lynkr.cache import scope
from lynkr.cache.scope import exact_key

BASE = {"model": "m", "max_tokens": 100,
        "system": [{"type": "text", "text": "Be terse. Today's date is 2026-11-26."}],
        "tools": [{"name": "Bash", "description": "Run", "input_schema": {"type": "object"}},
                  {"name": "Read", "description": "Read", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
                     {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "ok"}]}]}


def cold(request):
    scope.DIGESTS.clear()
    return exact_key(request)


def test_warm_and_cold_memo_give_one_key():
    k = cold(BASE)
    assert exact_key(copy.deepcopy(BASE)) == k          # warm: every part remembered
    assert cold(copy.deepcopy(BASE)) == k


def test_key_order_and_volatile_parts_do_not_matter():
    k = exact_key(BASE)
    reordered = {**BASE, "messages": [dict(reversed(list(m.items()))) for m in BASE["messages"]],
                 "tools": [dict(reversed(list(t.items()))) for t in BASE["tools"]]}
    assert exact_key(reordered) == k
    other_day = {**BASE, "system": [{"type": "text", "text": "Be terse. Today's date is 2026-11-27."}]}
    assert exact_key(other_day) == k
    other_ids = copy.deepcopy(BASE)
    other_ids["messages"][1]["content"][0]["id"] = other_ids["messages"][2]["content"][0]["tool_use_id"] = "toolu_99"
    assert exact_key(other_ids) == k


def test_parts_do_not_run_together():
    k = exact_key(BASE)
    one_tool = {**BASE, "tools": BASE["tools"][:1]}
    # the same parts, one message fewer and one tool more: counts are in the key's header
    shifted = {**BASE, "tools": BASE["tools"] + [BASE["messages"][0]], "messages": BASE["messages"][1:]}
    assert len({k, exact_key(one_tool), exact_key(shifted)}) == 3
    new_turn = {**BASE, "messages": BASE["messages"] + [{"role": "user", "content": [{"type": "text", "text": "more"}]}]}
    assert exact_key(new_turn) != k


def test_the_remembered_digests_are_bounded_by_the_json_they_hold(monkeypatch):
    from lynkr.kit.cache import Bounded
    monkeypatch.setattr(scope, "DIGESTS", Bounded(max_size=2_000))
    for i in range(200):
        exact_key({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": f"q{i}"}]}]})
    assert scope.DIGESTS.size <= 2_000 and len(scope.DIGESTS) < 60


def test_json_len_is_the_length_of_the_compact_json_and_parts_are_serialised_once():
    import orjson

    from lynkr.body import Body
    owner = Body()
    req = copy.deepcopy(BASE) | {"metadata": {"user_id": "ü"}, "temperature": 0.25, "stop_sequences": [],
                                 "thinking": {"type": "enabled", "budget_tokens": 10}}
    assert Body().json_len(req) == len(orjson.dumps(req))      # nothing remembered: plain orjson
    first = owner.json_of(req["messages"][0])
    assert owner.json_len(req) == len(orjson.dumps(req))
    assert owner.json_of(req["messages"][0]) is first          # remembered by identity
    # A stage replaces a part copy-on-write: the new part is serialised, the rest reused.
    changed = {**req, "messages": req["messages"][:2] + [{"role": "user", "content": "é" * 5}]}
    assert owner.json_len(changed) == len(orjson.dumps(changed))
    assert owner.json_len({}) == 2 and owner.json_len({"a": []}) == len(b'{"a":[]}')
    # The upstream body joined from the parts' JSON is orjson's, byte for byte.
    for body in (req, changed, {}, {"a": []}, {"m": [[1, 2], {"x": None}], "n": {"é": [1.5]}}):
        assert owner.json_bytes(body) == orjson.dumps(body) == Body().json_bytes(body)
    with pytest.raises(TypeError):
        owner.json_bytes({1: "non-str key"})
    # exact_key shares the body's JSON and gives the key it gives without it.
    assert exact_key(req, body=owner) == exact_key(copy.deepcopy(req))


def test_the_parts_json_lives_on_its_exchange_until_telemetry_counted_it():
    """The writer counts a finished exchange's tokens by its parts' JSON, then lets that JSON go;
    the count is the one made without it."""
    from lynkr.exchange import Exchange
    from lynkr.telemetry.writer import rows_for
    from lynkr.kit.tokens import count_request
    x = Exchange.new("anthropic", copy.deepcopy(BASE))
    assert x.body.known is None
    x.body.json_of(x.request["messages"][0])
    assert len(x.body.known) == 1
    row, _ = rows_for(x)
    assert x.body.known is None
    assert row["tokens_client"] == count_request(copy.deepcopy(BASE))
