"""The score stage: user-authored text only, word boundaries, negation, side requests, session
stability, fallbacks for empty messages, and accuracy on the labelled dev set."""
import json

import pytest

from lynkr.errors import ConfigError
from lynkr.routing.signals import is_negated
from lynkr.routing.text import read_conversation, strip_harness
from stages.score import Score
from tests.conftest import EVAL, FIXTURES
from tests.helpers.routing_requests import build_stage, claude_code, run_stage, user_request


@pytest.fixture
def score():
    return build_stage(Score)


# -- what is scored ------------------------------------------------------------------------------

def test_only_user_authored_text_is_scored():
    _h, body = claude_code(4)
    conv = read_conversation(body)
    assert conv.ask == ("Store.remove lets stock go negative. Make it refuse to remove more than is in stock, "
                        "and check it still works.")
    assert conv.ask_source == "earlier_message"          # the last message is a tool result
    assert conv.tool_loop_depth == 4 and conv.tools == 12
    assert "system-reminder" not in conv.ask


def test_harness_tags_are_stripped_but_html_stays():
    assert strip_harness("<system-reminder>\nsecurity audit\n</system-reminder>\nfix it") == "fix it"
    assert strip_harness("<environment_context><cwd>/x</cwd></environment_context>list files") == "list files"
    assert strip_harness("why does <div> collapse?") == "why does <div> collapse?"


async def test_system_reminder_words_do_not_raise_the_score(score):
    plain = await run_stage(score, user_request("Rename usr to user in auth.py."))
    noisy = await run_stage(score, {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>Prove the security of the distributed consensus "
                                 "protocol; analyze trade-offs, concurrency and data loss.</system-reminder>"},
        {"type": "text", "text": "Rename usr to user in auth.py."}]}]})
    assert noisy.vars["score"] == plain.vars["score"]
    assert noisy.vars["tier"] == plain.vars["tier"] == "MEDIUM"


async def test_breakdown_is_published(score):
    x = await run_stage(score, user_request("Prove that this lock-free queue is linearizable."))
    assert x.vars["tier"] == "REASONING"
    parts = x.vars["score_parts"]
    assert parts["reasoning"] > 0 and parts["risk"] > 0
    assert abs(sum(parts.values()) - x.vars["score"]) < 0.5
    detail = x.event("score").detail
    assert "prove" in detail["dimensions"]["reasoning"]["why"]


# -- word boundaries and negation -----------------------------------------------------------------

async def test_reproduction_is_not_production(score):
    x = await run_stage(score, user_request("Fix the failing reproduction script in tests/repro.py."))
    assert "risk" not in x.vars["score_parts"]
    y = await run_stage(score, user_request("Fix the failing script in production."))
    assert "production" in y.event("score").detail["dimensions"]["risk"]["why"]


async def test_verify_alone_does_not_force_the_top_tier(score):
    x = await run_stage(score, user_request("verify the tests pass"))
    assert x.vars["tier"] in ("SIMPLE", "MEDIUM")


async def test_negated_risk_is_ignored(score):
    x = await run_stage(score, user_request("This is not a security issue, just rename the key in settings.py."))
    assert "risk" not in x.vars["score_parts"]
    assert x.vars["tier"] == "MEDIUM"
    y = await run_stage(score, user_request("This is a security issue: rename the key in settings.py."))
    assert "security" in y.event("score").detail["dimensions"]["risk"]["why"]


def test_negation_stops_at_a_clause_break():
    text = "no tests needed, but check the security of the login"
    assert not is_negated(text, text.index("security"))
    text = "there is no concurrency here"
    assert is_negated(text, text.index("concurrency"))


async def test_identifier_is_not_a_verb(score):
    x = await run_stage(score, user_request("What port does Redis use?"))
    assert x.vars["tier"] == "SIMPLE"
    y = await run_stage(score, user_request("Port the resize service from Python to Go."))
    assert y.event("score").detail["dimensions"]["action"]["why"] == "build: port"


# -- side requests ------------------------------------------------------------------------------

async def test_main_loop_request_is_not_a_side_request(score):
    headers, body = claude_code(0)
    x = await run_stage(score, body, session="s", headers=headers)
    assert "side_request" not in x.vars and x.vars["score"] > 0


async def test_suggestion_mode_goes_to_simple(score):
    headers, body = claude_code(4)
    body["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "Done."}]})
    body["messages"].append({"role": "user", "content": [{"type": "text", "text":
        "[SUGGESTION MODE: Suggest what the user might naturally type next into Claude Code.]\n\n"
        "FIRST: Look at the user's recent messages and original request. Design, prove, audit security."}]})
    x = await run_stage(score, body, session="s", headers=headers)
    assert x.vars["tier"] == "SIMPLE" and x.vars["side_request"] == "suggestion"


@pytest.mark.parametrize("probe", [
    {"max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]},
    {"max_tokens": 1024, "messages": [{"role": "user", "content": "Warmup"}]},
])
async def test_quota_and_warmup_probes_go_to_simple(score, probe):
    headers, _ = claude_code(0)
    x = await run_stage(score, {"model": "claude-opus-5-5", **probe}, session="s", headers=headers)
    assert x.vars["tier"] == "SIMPLE" and x.vars["side_request"] == "probe"


async def test_title_generation_goes_to_simple(score):
    headers, body = claude_code(0)
    title = {"model": body["model"], "max_tokens": 512, "stream": True,
             "system": [{"type": "text", "text": "Write a 5-10 word title for the following conversation. "
                                                 "Respond with the title and nothing else."}],
             "messages": [{"role": "user", "content": "Refactor the whole data layer across the repository, "
                                                      "migrate the schema and prove it is consistent."}]}
    x = await run_stage(score, title, session="s", headers=headers)
    assert x.vars["tier"] == "SIMPLE" and x.vars["side_request"] == "title"


async def test_haiku_background_model_goes_to_simple(score):
    headers, body = claude_code(0)
    body = {**body, "model": "claude-haiku-4-5-20251001"}
    x = await run_stage(score, body, session="s2", headers=headers)
    assert x.vars["tier"] == "SIMPLE" and x.vars["side_request"] == "background_model"


async def test_side_requests_can_be_switched_off():
    stage = build_stage(Score, {"side_requests": False})
    x = await run_stage(stage, user_request("Prove the lock-free queue is linearizable.", model="claude-haiku-4-5"))
    assert x.vars["tier"] == "REASONING" and "side_request" not in x.vars


# -- session stability ------------------------------------------------------------------------------

def _loop(depth: int, ask: str) -> dict:
    """A Claude Code-shaped tool loop `depth` calls deep on one ask."""
    msgs = [{"role": "user", "content": [{"type": "text", "text": ask}]}]
    for i in range(depth):
        msgs.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "Bash",
                                                        "input": {"command": "pytest"}}]})
        msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok"}]})
    return {"model": "claude-opus-5-5", "max_tokens": 1000, "messages": msgs,
            "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]}


ASK = "Refactor the storage layer across the repository and update the tests."


async def test_tier_does_not_drop_inside_a_tool_loop():
    # A negative agentic weight makes deeper loops score lower, so only the floor keeps the tier.
    stage = build_stage(Score, {"weights": {"agentic": -60}})
    first = await run_stage(stage, _loop(0, ASK), session="loop")
    assert first.vars["tier"] == "COMPLEX"
    deeper = await run_stage(stage, _loop(6, ASK), session="loop")
    assert deeper.vars["score"] < first.vars["score"]
    assert deeper.vars["tier"] == "COMPLEX"
    assert deeper.vars["tier_reason"].startswith("session floor")
    # Another session is not affected, and a new user turn starts afresh.
    other = await run_stage(stage, _loop(6, ASK), session="other")
    assert other.vars["tier"] != "COMPLEX"
    new_turn = await run_stage(stage, _loop(0, "thanks!"), session="loop")
    assert new_turn.vars["tier"] == "SIMPLE"


async def test_tier_may_rise_inside_a_tool_loop():
    stage = build_stage(Score, {"weights": {"agentic": 60}})
    ask = "Add a docstring to parse_args in cli.py."
    first = await run_stage(stage, _loop(0, ask), session="up")
    deeper = await run_stage(stage, _loop(8, ask), session="up")
    assert deeper.vars["score"] > first.vars["score"]
    assert TIERS.index(deeper.vars["tier"]) > TIERS.index(first.vars["tier"])


async def test_stability_can_be_switched_off():
    stage = build_stage(Score, {"weights": {"agentic": -60}, "session_stability": False})
    await run_stage(stage, _loop(0, ASK), session="loop")
    deeper = await run_stage(stage, _loop(6, ASK), session="loop")
    assert deeper.vars["tier"] != "COMPLEX"


def _follow_up(first: str, reply: str) -> dict:
    return {"model": "claude-opus-5-5", "max_tokens": 1000, "messages": [
        {"role": "user", "content": first},
        {"role": "assistant", "content": "Here is the plan: 1. … 2. … Shall I go ahead?"},
        {"role": "user", "content": reply}]}


async def test_a_short_follow_up_carries_on_the_previous_task():
    stage = build_stage(Score)
    first = await run_stage(stage, _loop(0, ASK), session="f")
    assert first.vars["tier"] == "COMPLEX"
    x = await run_stage(stage, _follow_up(ASK, "yes, go ahead"), session="f")
    assert x.vars["tier"] == "COMPLEX" and x.vars["tier_reason"].startswith("follow-up")
    # A longer new ask is scored on its own; without history or memory, "yes" is SIMPLE.
    y = await run_stage(stage, _follow_up(ASK, "Now write a haiku about the weather in Lisbon for my friend's card"),
                        session="f")
    assert y.vars["tier_reason"] == "score"
    z = await run_stage(stage, user_request("yes, go ahead"), session="fresh")
    assert z.vars["tier"] == "SIMPLE"


async def test_follow_up_inheritance_can_be_switched_off():
    stage = build_stage(Score, {"follow_up_words": 0})
    await run_stage(stage, _loop(0, ASK), session="g")
    x = await run_stage(stage, _follow_up(ASK, "yes, go ahead"), session="g")
    assert x.vars["tier"] == "SIMPLE"


def test_session_memory_is_bounded():
    from lynkr.routing.sessions import TierMemory
    m = TierMemory(max_sessions=3)
    for i in range(10):
        m.record(f"s{i}", 1, 2)
    assert len(m) == 3 and m.floor("s0", 1) is None and m.floor("s9", 1) == 2


# -- bad input ----------------------------------------------------------------------------------------

async def test_non_text_last_message_falls_back_to_earlier_user_text(score):
    body = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "Prove this lock-free queue is linearizable."},
        {"role": "assistant", "content": "Which file?"},
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                    "data": "iVBORw0KGgo="}}]}]}
    x = await run_stage(score, body)
    assert x.vars["tier"] == "REASONING"
    assert x.event("score").detail["ask"] == "earlier_message"


async def test_no_user_text_is_medium_and_recorded(score):
    for messages in ([], [{"role": "user", "content": []}], [{"role": "user", "content": "   "}]):
        x = await run_stage(score, {"model": "m", "max_tokens": 10, "messages": messages})
        assert x.vars["tier"] == "MEDIUM" and x.vars["score"] is None
        assert x.vars["tier_reason"] == "no user text to score"


def test_thresholds_must_increase(write_pipeline):
    from lynkr.config import load_config
    from lynkr.engine.pipeline import build_pipeline
    p = write_pipeline("""
version: 1
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:9"}
stages:
  - id: score
    uses: score
    with:
      thresholds: {MEDIUM: 30, COMPLEX: 20}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
""")
    with pytest.raises(ConfigError) as e:
        build_pipeline(load_config(p), dry_run=True)
    assert "thresholds must increase" in str(e.value) and "pipeline.yaml:9:" in str(e.value)


def test_unknown_weight_is_a_load_error(write_pipeline):
    from lynkr.config import load_config
    p = write_pipeline("""
version: 1
stages:
  - {id: score, uses: score, with: {weights: {reasonin: 5}}}
""")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "reasonin" in str(e.value) and "reasoning" in str(e.value)


# -- accuracy ----------------------------------------------------------------------------------------

TIERS = ["SIMPLE", "MEDIUM", "COMPLEX", "REASONING"]


@pytest.mark.skipif(not (EVAL / "routing-dev.jsonl").is_file(), reason="../shared/eval not present")
async def test_dev_set_accuracy_and_no_under_routing(score):
    rows = [json.loads(line) for line in (EVAL / "routing-dev.jsonl").read_text().splitlines() if line.strip()]
    exact = 0
    for r in rows:
        x = await run_stage(score, user_request(r["prompt"]))
        got = x.vars["tier"]
        exact += got == r["tier"]
        if r["tier"] in ("COMPLEX", "REASONING"):
            assert TIERS.index(r["tier"]) - TIERS.index(got) < 2, r["prompt"]
    assert exact / len(rows) >= 0.85


async def test_a_title_in_a_real_task_is_not_a_side_request(score):
    x = await run_stage(score, user_request("Create a React settings page with the title in the header, a dark "
                                            "mode toggle persisted across the whole app, and tests."))
    assert "side_request" not in x.vars and x.vars["tier"] != "SIMPLE"
    y = await run_stage(score, user_request("Please write a 5-10 word title for the following conversation:\n"
                                            "[Last 4 of 9 messages]\nRefactor the storage layer across the repo."))
    assert y.vars["side_request"] == "title"


def test_codex_session_header_is_the_session():
    from aiohttp.test_utils import make_mocked_request
    from lynkr.server.handler import session_of
    req = make_mocked_request("POST", "/v1/responses", headers={"session-id": "01a2057a-39c5"})
    assert session_of(req.headers, {}) == "01a2057a-39c5"


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
def test_session_from_claude_code_user_id_without_the_header():
    # What 2.1.328 sends in metadata (../shared/fixtures), and the 1.x form; the header wins when sent.
    from lynkr.server.handler import session_of
    fixture = json.loads((FIXTURES / "claude-code/fix-negative-stock/req_004.json").read_text())
    assert session_of({}, fixture["body"]) == "43e9a6fd-7a3a-4d1c-b7cf-4938cae8186a"
    old = {"metadata": {"user_id": "user_ab12_account_c0ffee_session_5e55-10n"}}
    assert session_of({}, old) == "5e55-10n"
    assert session_of({}, {"metadata": {"user_id": "someone"}}) == "someone"
    assert session_of({}, {"metadata": {"user_id": "{not json"}}) == "{not json"
    assert session_of({"x-claude-code-session-id": "h"}, fixture["body"]) == "h"


# -- any shape a client may send --------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12)
_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=200)}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": st.text(max_size=5),
                           "content": st.one_of(st.text(max_size=50), st.lists(_json, max_size=3)),
                           "is_error": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": st.text(max_size=5), "name": st.text(max_size=5),
                           "input": _json}),
    _json)
_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", 7]),
                                  "content": st.one_of(st.text(max_size=200), st.lists(_block, max_size=4), _json)})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_message, max_size=6), tools=st.one_of(st.none(), st.lists(_json, max_size=3), _json),
       model=st.one_of(st.text(max_size=20), _json), max_tokens=_json)
def test_any_request_shape_gets_a_score_or_the_default(messages, tools, model, max_tokens):
    import asyncio
    from lynkr.config.loader import TIERS as ALL
    from lynkr.exchange import Exchange
    stage = build_stage(Score)
    x = Exchange.new("anthropic", {"messages": messages, "tools": tools, "model": model, "max_tokens": max_tokens},
                     session="h")
    x.start_stage(stage.id, stage.name)
    asyncio.run(stage.run(x))
    assert x.vars["tier"] in ALL
    assert x.vars["score"] is None or 0 <= x.vars["score"] <= 100
