"""Token estimates: cl100k_base counts, cached by hash (never holding the texts), request totals."""
import json

import tiktoken

from lynkr.kit import tokens
from lynkr.kit.tokens import count_request, count_text
from tests.conftest import FIXTURES


def test_counts_are_cl100k_and_cached_without_keeping_texts():
    enc = tiktoken.get_encoding("cl100k_base")
    text = "def add(a, b):\n    return a + b  # ünïcode ✓\n" * 50
    assert count_text(text) == len(enc.encode_ordinary(text))
    assert count_text(text) == len(enc.encode_ordinary(text))      # from the cache
    assert all(isinstance(k, tuple) and isinstance(v, int) for k, v in list(tokens.TEXT_COUNTS.items())[:50])
    assert count_text("") == 0


def test_count_request_covers_system_messages_and_tools():
    body = {"system": [{"type": "text", "text": "You are terse."}],
            "tools": [{"name": "Read", "description": "Reads a file.", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]}
    n = count_request(body)
    assert n == count_request({**body, "tools": []}) + count_text("Read") + count_text("Reads a file.") \
        + count_text('{"type":"object"}')
    assert count_request({**body, "system": []}) < n


def test_fixture_bodies_count_close_to_their_json_size():
    for path in list(FIXTURES.rglob("req_000.json"))[:2]:
        body = json.loads(path.read_text())["body"]
        if "messages" not in body:
            continue
        n = count_request(body)
        assert len(json.dumps(body)) / 8 < n < len(json.dumps(body)) / 2


def test_count_request_reuses_the_parts_json_the_stages_made():
    import copy

    from lynkr.body import Body
    body = {"system": [{"type": "text", "text": "You are terse."}],
            "tools": [{"name": "Read", "description": "Reads a file.", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there, counted"}]}]}
    plain = count_request(copy.deepcopy(body))
    owner = Body()
    for part in [body["system"], *body["tools"], *body["messages"]]:
        owner.json_of(part)
    assert count_request(body, {}, owner.known) == plain
    # An entry for another object under a reused id is not taken for this part's JSON.
    other = {"role": "user", "content": [{"type": "text", "text": "something else entirely"}]}
    stale = {id(body["messages"][0]): (other, Body().json_of(other))}
    assert count_request(body, {}, stale) == plain


def test_gathering_sets_new_texts_aside_then_counts_them_in_one_trip(monkeypatch):
    """The telemetry thread's two passes: inside `gathering` nothing new is counted or
    remembered; on leaving, one batch is counted; the second pass gives the true totals."""
    body = {"system": [{"type": "text", "text": "gathering system prompt ✓"}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a question never seen before 1234"}]},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Read", "input": {"p": "x.py"}}]}]}
    batches = []
    real = tokens._count_new
    monkeypatch.setattr(tokens, "_count_new", lambda texts: batches.append(list(texts)) or real(texts))
    with tokens.gathering():
        partial = count_request(body)
    assert len(batches) == 1 and "a question never seen before 1234" in batches[0]
    full = count_request(body)
    assert len(batches) == 1                                   # all cache hits now
    assert partial < full
    tokens.forget()
    assert count_request(body) == full                         # the same as counting directly


def test_a_memo_shared_by_both_passes_keeps_only_complete_counts(monkeypatch):
    """The telemetry thread shares one memo between the gathering pass and the row's counts:
    the parts counted before are read once, a part with a new text is counted again in full."""
    known = {"role": "user", "content": [{"type": "text", "text": "an old turn, counted before"}]}
    count_request({"messages": [known]})
    body = {"messages": [dict(known), {"role": "user", "content": [{"type": "text", "text": "new words 98765"}]}]}
    memo: dict = {}
    with tokens.gathering():
        count_request(body, memo)
    counted = [id(v[0]) for k, v in memo.items() if not isinstance(k, tuple)]     # parts, not the request
    assert counted == [id(body["messages"][0])]                 # the new turn left out
    seen = []
    real = tokens._by_json
    monkeypatch.setattr(tokens, "_by_json", lambda obj, fn, json=None: seen.append(obj) or real(obj, fn, json))
    shared = count_request(body, memo)
    assert seen == [body["messages"][1]]                       # only the new turn looked up again
    assert shared == count_request(body) == count_request(json.loads(json.dumps(body)))


def test_count_texts_matches_count_text():
    texts = ["alpha beta", "", "gamma " * 30, "alpha beta"]
    assert tokens.count_texts(texts) == [count_text(t) for t in texts]
