"""Body.read: the JSON of the parts a client resent unchanged is the previous request's.

Whatever the client sends, every JSON the walk records must be exactly `orjson.dumps` of its part
(what `Body.json_of` would have made), and the upstream body must be the same bytes as without it."""
import json
import random

import orjson
import pytest

from lynkr import body as body_owner
from lynkr.body import Body
from tests.conftest import FIXTURES

SESSION = FIXTURES / "claude-code" / "fix-negative-stock"
needs_fixtures = pytest.mark.skipif(not SESSION.is_dir(), reason="needs ../shared/fixtures")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(body_owner, "MIN_BODY", 0)     # small bodies walked too, to test the walk
    body_owner.forget_sessions()
    yield
    body_owner.forget_sessions()


def turns() -> list[dict]:
    return [json.loads(p.read_text())["body"] for p in sorted(SESSION.glob("req_*.json"))]


def compact(body) -> bytes:
    """As Claude Code sends it (JSON.stringify: no spaces, UTF-8)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def walk(raw: bytes, session: str = "s") -> tuple[int, dict, dict]:
    body = orjson.loads(raw)
    owner = Body()
    n = owner.read(raw, body, session)
    memo = owner.known
    for part, js in memo.values():
        assert js == orjson.dumps(part)
    return n, memo, body


@needs_fixtures
def test_a_claude_code_session_reuses_every_part_it_resent():
    before: list[bytes] = []
    for body in turns():
        n, memo, parsed = walk(compact(body))
        parts = [parsed["system"], *parsed["tools"], *parsed["messages"]]
        assert {id(p) for p in parts} == set(memo)          # read to the end
        now = [compact(p) for p in parts]
        # The system prompt, every tool, the history; not the new messages, nor the one that lost
        # its cache_control marker to them.
        sys_tools = 1 + len(parsed["tools"])
        same = sum(a == b for a, b in zip(now[:sys_tools], before[:sys_tools]))
        same += sum(a == b for a, b in zip(now[sys_tools:], before[sys_tools:]))
        assert n == same and (not before or n >= len(parts) - 3)
        before = now


@needs_fixtures
def test_a_resent_part_is_the_previous_requests_json_object():
    first, second = turns()[3:5]
    _, memo1, b1 = walk(compact(first))
    _, memo2, b2 = walk(compact(second))
    assert memo2[id(b2["tools"][0])][1] is memo1[id(b1["tools"][0])][1]    # hashed once, not copied
    assert memo2[id(b2["system"])][1] is memo1[id(b1["system"])][1]


@needs_fixtures
@pytest.mark.parametrize("style", ["spaced", "ascii", "indented"])
def test_other_json_records_nothing_it_cannot_prove(style):
    body = turns()[-1]
    walk(compact(body))
    raw = {"spaced": json.dumps(body).encode(),
           "ascii": json.dumps(body, separators=(",", ":")).encode(),
           "indented": json.dumps(body, indent=1).encode()}[style]
    n, memo, parsed = walk(raw)
    if style == "ascii":
        # Until the first non-ASCII character it is the compact JSON (here, the first message).
        assert n == len(memo)
    else:
        assert memo == {} and n == 0


def test_a_part_that_only_starts_like_the_previous_one_is_serialised():
    a = {"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "x"}]}
    walk(compact(a))
    b = {"model": "m", "messages": [{"role": "user", "content": "hi", "extra": 1}, {"role": "user", "content": "x"}]}
    n, memo, parsed = walk(compact(b))
    assert n == 1 and memo[id(parsed["messages"][0])][1] == compact(parsed["messages"][0])


def test_an_escaped_key_or_a_number_written_otherwise_stops_the_walk_there():
    walk(compact({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                  "tools": [{"name": "t", "input_schema": {"type": "object"}}]}))
    raw = (b'{"model":"m","messages":[{"role":"user","content":"a"},{"ro\\u006ce":"user","content":"b"}],'
           b'"tools":[{"name":"t","input_schema":{"type":"object"}}]}')
    n, memo, parsed = walk(raw)
    assert list(memo) == [id(parsed["messages"][0])] and n == 1
    raw = b'{"model":"m","temperature":1.50,"messages":[{"role":"user","content":"a"}]}'
    n, memo, _ = walk(raw)
    assert memo == {}


def test_sessions_do_not_share_guesses_but_identical_bytes_are_identical_json():
    body = {"model": "m", "system": [{"type": "text", "text": "sys — ü 🤖"}], "messages": [{"role": "user", "content": "q"}]}
    walk(compact(body), session="a")
    n, memo, parsed = walk(compact(body), session="b")
    assert n == 0 and len(memo) == 2
    n, memo, parsed = walk(compact(body), session="a")
    assert n == 2


def test_a_side_request_on_another_model_leaves_the_conversations_parts():
    main = {"model": "claude-opus", "system": [{"type": "text", "text": "agent"}],
            "messages": [{"role": "user", "content": "fix it"}], "tools": [{"name": "Bash", "input_schema": {}}]}
    walk(compact(main))
    walk(compact({"model": "claude-haiku", "system": [{"type": "text", "text": "title"}],
                  "messages": [{"role": "user", "content": "fix it"}]}))
    main["messages"].append({"role": "assistant", "content": "ok"})
    n, memo, _ = walk(compact(main))
    assert n == 3 and len(memo) == 4


@needs_fixtures
def test_random_edits_never_record_a_wrong_json():
    """Turns edited the ways a client or a person might: messages dropped, swapped, re-indented,
    escaped differently, a key renamed, numbers changed. Whatever the walk records is orjson's."""
    rng = random.Random(7)
    base = turns()[-1]
    for _ in range(150):
        body = json.loads(json.dumps(base))
        msgs = body["messages"]
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(["drop", "swap", "edit", "rename", "number", "tool"])
            i = rng.randrange(len(msgs))
            if op == "drop" and len(msgs) > 1:
                msgs.pop(i)
            elif op == "swap":
                j = rng.randrange(len(msgs))
                msgs[i], msgs[j] = msgs[j], msgs[i]
            elif op == "edit":
                msgs[i] = {**msgs[i], "content": [{"type": "text", "text": "edited ü"}]}
            elif op == "rename":
                msgs[i] = {("content" if k == "role" else "role" if k == "content" else k): v for k, v in msgs[i].items()}
            elif op == "number":
                body["max_tokens"] = rng.randint(1, 10 ** 6)
            else:
                body["tools"].insert(rng.randrange(len(body["tools"]) + 1), {"name": "T", "input_schema": {}})
        raw = compact(body)
        style = rng.random()
        if style < 0.2:
            k = rng.randrange(len(msgs))
            raw = raw.replace(compact(msgs[k]), json.dumps(msgs[k], indent=1, ensure_ascii=False).encode(), 1)
        elif style < 0.3:
            raw = raw.replace("ü".encode(), b"\\u00fc")
        walk(raw, session=rng.choice(["s", "t"]))


@needs_fixtures
async def test_the_upstream_gets_the_same_bytes_as_without_it(lynkr, monkeypatch, tmp_path):
    """A Claude Code session through default.yaml, served: what goes upstream is byte for byte what
    it was when every part was serialised afresh."""
    import aiohttp

    from tests.conftest import ROOT, serving
    from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message

    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    calls = []
    real = Body.read
    sent = {}
    for mode in ("reuse", "serialise"):
        monkeypatch.setattr(Body, "read", (lambda self, *a: calls.append(real(self, *a))) if mode == "reuse"
                            else (lambda self, *a: 0))
        monkeypatch.setenv("LYNKR_STATE_DIR", str(tmp_path / mode))
        async with serving(AnthropicUpstream(lambda body: text_message("ok"))) as up:
            monkeypatch.setenv("ANTHROPIC_UPSTREAM_URL", up.url)
            _, url = await lynkr(ROOT / "pipelines" / "default.yaml", telemetry_path=str(tmp_path / f"{mode}.duckdb"))
            async with aiohttp.ClientSession() as s:
                for body in turns():
                    async with s.post(url + "/v1/messages", data=compact({**body, "stream": False}), headers={
                            "content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01",
                            "x-claude-code-session-id": "sess-1"}) as r:
                        assert r.status == 200, await r.text()
            sent[mode] = list(up.raw)
    assert len(sent["reuse"]) == len(turns()) and sent["reuse"] == sent["serialise"]
    assert calls[0] == 0 and all(n >= 10 for n in calls[1:])
