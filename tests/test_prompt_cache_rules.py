"""Prompt-cache rules per upstream (lynkr/providers/prompt_cache.py, docs/providers.md): where
breakpoints are added and where not, what a client's `ttl` and malformed markers become for each
provider kind (checked by doubles that reject what the real APIs reject), exact cache usage from
every provider's fields, and the per-turn cache share `lynkr replay` reports."""
import json

import aiohttp
import duckdb
import pytest

from lynkr.providers.bedrock import BedrockProvider
from lynkr.providers.openai import OpenAIProvider
from lynkr.providers.anthropic import AnthropicProvider
from lynkr.providers.prompt_cache import CacheRules, count_points, prepare, rules_for
from lynkr.wire.canonical import usage_from_openai
from tests.conftest import FIXTURES, ROOT, serving
from tests.helpers.provider_doubles import (AnthropicDouble, BedrockDouble, GeminiDouble, OllamaDouble,
                                            OpenAIDouble, provider_yaml)

BIG = "word " * 1500          # ~1500 tokens: above every Claude model's minimum but Haiku 4.5's / Opus 4.5's
CC = {"type": "ephemeral"}


def agent_request(cc_on=(), ttl=None, turns=2) -> dict:
    """tools, system and an agent loop of `turns` tool calls; `cc_on` names where the client put markers."""
    mark = {**CC, **({"ttl": ttl} if ttl else {})}
    tools = [{"name": n, "description": BIG if n == "Bash" else n, "input_schema": {"type": "object", "properties": {}}}
             for n in ("Bash", "Read")]
    system = [{"type": "text", "text": "You are a coding agent. " + BIG}]
    msgs = [{"role": "user", "content": [{"type": "text", "text": "fix the bug"}]}]
    for k in range(turns):
        msgs.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{k}", "name": "Bash", "input": {"c": k}}]})
        msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{k}", "content": f"out {k} " * 50}]})
    req = {"model": "claude-sonnet-4-5", "max_tokens": 100, "tools": tools, "system": system, "messages": msgs}
    for where in cc_on:
        if where == "tools":
            req["tools"][-1]["cache_control"] = mark
        elif where == "system":
            req["system"][-1]["cache_control"] = mark
        else:
            req["messages"][where]["content"][-1]["cache_control"] = mark
    return req


def marks(req: dict) -> list[str]:
    out = [f"tools[{i}]" for i, t in enumerate(req.get("tools") or []) if "cache_control" in t]
    out += [f"system[{i}]" for i, b in enumerate(req.get("system") or []) if "cache_control" in b]
    out += [f"messages[{i}]" for i, m in enumerate(req["messages"]) for b in m["content"] if "cache_control" in b]
    return out


# ---- the breakpoint policy -------------------------------------------------------------------------

def test_breakpoints_go_at_end_of_tools_end_of_system_previous_and_last_turn():
    """A request without markers gets four, at the places that stay put next turn."""
    req = agent_request()
    out, note = prepare(req, CacheRules("cache_control"))
    assert marks(out) == ["tools[1]", "system[0]", "messages[2]", "messages[4]"]
    assert note == {"added": ["tools[1]", "system[0]", "messages[2].content[0]", "messages[4].content[0]"]}
    assert count_points(req) == 0                        # copy-on-write: the client's request is untouched
    assert out["messages"][0] is req["messages"][0]      # and what did not change is shared


def test_next_turns_breakpoint_lands_where_this_turns_last_one_was():
    """Turn n's last breakpoint is turn n+1's previous-turn breakpoint: the prefix the cache holds."""
    now, _ = prepare(agent_request(turns=2), CacheRules("cache_control"))
    nxt, _ = prepare(agent_request(turns=3), CacheRules("cache_control"))
    assert "messages[4]" in marks(now) and "messages[4]" in marks(nxt) and "messages[6]" in marks(nxt)


def test_a_request_with_four_client_breakpoints_gets_none_added():
    req = agent_request(cc_on=("tools", "system", 2, 4))
    out, note = prepare(req, CacheRules("cache_control"))
    assert out is req and note == {}


def test_a_client_breakpoint_means_the_client_manages_its_cache():
    req = agent_request(cc_on=(4,))
    out, note = prepare(req, CacheRules("cache_control"))
    assert marks(out) == ["messages[4]"] and note == {}


def test_no_breakpoint_below_the_models_minimum_cacheable_length():
    """Haiku 4.5 caches nothing under 4096 tokens: the ~1500-token tools prefix gets no marker."""
    req = agent_request()
    haiku = rules_for(AnthropicProvider("a", {"kind": "anthropic", "base_url": "https://api.anthropic.com"}),
                      "claude-haiku-4-5")
    assert haiku.min_tokens == 4096
    out, _ = prepare(req, haiku)
    assert "tools[1]" not in marks(out) and "system[0]" not in marks(out)
    tiny = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    assert prepare(tiny, CacheRules("cache_control"))[0] is tiny


def test_thinking_and_empty_text_never_carry_a_marker():
    req = agent_request(turns=1)
    req["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "ok"},
                                                             {"type": "thinking", "thinking": "x", "signature": "s"},
                                                             {"type": "text", "text": "  "}]})
    out, _ = prepare(req, CacheRules("cache_control"))
    last = out["messages"][-1]["content"]
    assert "cache_control" in last[0] and "cache_control" not in last[1] and "cache_control" not in last[2]


def test_upstreams_without_markers_are_left_alone():
    req = agent_request(cc_on=("system",), ttl="1h")
    assert prepare(req, CacheRules("none")) == (req, {})


# ---- what a client's markers become ------------------------------------------------------------------

def test_malformed_client_markers_are_fixed_by_the_documented_rules():
    req = agent_request(cc_on=("tools", "system", 0, 2, 4))                   # five
    req["messages"][0]["content"][0]["cache_control"] = {"type": "persistent"}   # unknown type
    req["messages"][2]["content"][0]["cache_control"] = {"type": "ephemeral", "ttl": "forever"}
    req["tools"][1]["cache_control"] = {"type": "ephemeral", "ttl": "5m"}
    req["system"][0]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}     # 1h after a 5m
    out, note = prepare(req, CacheRules("cache_control", ttl=True))
    fixed = " | ".join(note["fixed"])
    assert "unknown type 'persistent'" in fixed and "ttl 'forever'" in fixed and "1h after a 5m" in fixed
    assert count_points(out) == 4 and "cache_control" not in out["messages"][0]["content"][0]
    assert out["system"][0]["cache_control"] == CC and out["messages"][2]["content"][0]["cache_control"] == CC


def test_more_than_four_markers_keep_the_first_three_and_the_last():
    req = agent_request(turns=3, cc_on=("tools", "system", 2, 4, 6))
    out, note = prepare(req, CacheRules("cache_control"))
    assert marks(out) == ["tools[1]", "system[0]", "messages[2]", "messages[6]"]
    assert "over the upstream's 4" in note["fixed"][0]


def test_ttl_rules_by_provider():
    anthropic = AnthropicProvider("a", {"kind": "anthropic", "base_url": "https://api.anthropic.com"})
    zai = AnthropicProvider("z", {"kind": "anthropic", "base_url": "https://api.z.ai/api/anthropic", "api_key": "k"})
    bedrock = BedrockProvider("b", {"kind": "bedrock", "region": "us-east-1", "api_key": "k"})
    router = OpenAIProvider("o", {"kind": "openai", "base_url": "https://openrouter.ai/api/v1", "api_key": "k"})
    openai = OpenAIProvider("p", {"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key": "k"})
    assert rules_for(anthropic, "claude-sonnet-4-5").ttl and not rules_for(zai, "glm-4.6").ttl
    assert rules_for(bedrock, "us.anthropic.claude-sonnet-4-5-20250929-v1:0").markers == "cachePoint"
    assert rules_for(router, "anthropic/claude-sonnet-4.5") == CacheRules("parts", ttl=True)
    assert rules_for(router, "google/gemini-2.5-pro").ttl is False
    assert rules_for(router, "openai/gpt-4o").markers == "none"
    assert rules_for(openai, "gpt-4o").cache_key and not rules_for(openai, "gpt-4o").explicit
    forced = AnthropicProvider("f", {"kind": "anthropic", "base_url": "http://127.0.0.1:1", "prompt_cache": {"ttl": True}})
    assert rules_for(forced, "claude-sonnet-4-5").ttl


PIPE = """
version: 1
name: ttl
providers:
{provider}stages:
  - {{id: call, uses: provider_call, with: {{to: "up:{model}"}}}}
"""

# kind, provider_yaml kind, extra config, model, double, where the marker's ttl should end up
KINDS = {
    "anthropic-keeps": ("anthropic", ", prompt_cache: {ttl: true}", "claude-sonnet-4-5",
                        lambda: AnthropicDouble(), "1h"),
    "anthropic-compatible-strips": ("anthropic", "", "glm-4.6", lambda: AnthropicDouble(reject_ttl=True), None),
    "bedrock-keeps": ("bedrock", "", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", lambda: BedrockDouble(), "1h"),
    "openrouter-claude-keeps": ("openai", ", flavor: openrouter", "anthropic/claude-sonnet-4.5",
                                lambda: OpenAIDouble(markers=True), "1h"),
    "openrouter-gemini-strips": ("openai", ", flavor: openrouter", "google/gemini-2.5-pro",
                                 lambda: OpenAIDouble(markers=True, reject_ttl=True), None),
    "openai-drops-markers": ("openai", "", "gpt-4o", lambda: OpenAIDouble(), "absent"),
    "gemini-drops-markers": ("gemini", "", "gemini-2.5-pro", lambda: GeminiDouble(), "absent"),
    "ollama-drops-markers": ("ollama", "", "qwen2.5-coder:7b", lambda: OllamaDouble(), "absent"),
}


def _ttls(kind: str, body: dict) -> list:
    """Every marker's ttl in an upstream body, in that provider's own marker syntax."""
    if kind == "bedrock":
        items = [c for c in (body.get("system") or []) + [c for m in body["messages"] for c in m["content"]]]
        return [c["cachePoint"].get("ttl") for c in items if "cachePoint" in c]
    raw = json.dumps(body)
    return [json.loads("{" + part.split("}", 1)[0] + "}").get("ttl")
            for part in raw.split('"cache_control": {')[1:]]


@pytest.mark.parametrize("case", list(KINDS))
async def test_a_one_hour_ttl_reaches_upstreams_that_take_it_and_is_removed_for_the_others(lynkr, write_pipeline,
                                                                                          case):
    kind, extra, model, make, want = KINDS[case]
    double = make()
    async with serving(double):
        pipe = write_pipeline(PIPE.format(provider=provider_yaml(kind, double.url, "up", extra), model=model))
        _, url = await lynkr(pipe)
        body = {**agent_request(cc_on=("system", 4), ttl="1h"), "stream": False}
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/messages", json=body) as r:
                assert r.status == 200, await r.text()
    assert double.problems == []
    ttls = _ttls(kind, double.requests[-1])
    if want == "absent":
        assert ttls == [] and "cache_control" not in json.dumps(double.requests[-1])
    else:
        assert ttls == [want, want]


async def test_bad_markers_reach_anthropic_fixed_and_the_fix_is_recorded(lynkr, write_pipeline, tmp_path):
    """Five markers, one of an unknown type, one with a ttl that is not a duration: the upstream
    (which rejects all three) answers 200, and provider_call's event says what was changed."""
    double = AnthropicDouble()
    db = tmp_path / "t.duckdb"
    async with serving(double):
        pipe = write_pipeline(PIPE.format(provider=provider_yaml("anthropic", double.url, "up"), model="*"))
        engine, url = await lynkr(pipe, telemetry_path=str(db))
        body = agent_request(cc_on=("tools", "system", 0, 2, 4))
        body["messages"][0]["content"][0]["cache_control"] = {"type": "forever"}
        body["messages"][2]["content"][0]["cache_control"] = {"type": "ephemeral", "ttl": "10 minutes"}
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/messages", json=body) as r:
                assert r.status == 200, await r.text()
        for _ in range(100):
            if engine.writer.written:
                break
            engine.writer.flush()
    assert double.problems == [] and count_points(double.requests[-1]) == 4
    with duckdb.connect(str(db), read_only=True) as con:
        detail = con.execute("SELECT detail FROM stage_events WHERE uses = 'provider_call'").fetchone()[0]
    fixed = json.loads(detail)["prompt_cache"]["fixed"]
    assert any("unknown type 'forever'" in f for f in fixed) and any("'10 minutes'" in f for f in fixed)


async def test_openai_upstreams_get_a_stable_prompt_cache_key_per_session(lynkr, write_pipeline):
    double = OpenAIDouble()
    async with serving(double):
        pipe = write_pipeline(PIPE.format(provider=provider_yaml("openai", double.url, "up", ", flavor: openai"),
                                          model="gpt-4o"))
        _, url = await lynkr(pipe)
        async with aiohttp.ClientSession() as s:
            for sid in ("s-1", "s-1", "s-2"):
                async with s.post(url + "/v1/messages", json=agent_request(),
                                  headers={"x-claude-code-session-id": sid}) as r:
                    assert r.status == 200, await r.text()
    keys = [r.get("prompt_cache_key") for r in double.requests]
    assert keys[0] and keys[0] == keys[1] != keys[2] and "s-1" not in keys[0]


# ---- usage, exact --------------------------------------------------------------------------------------

def test_cache_usage_from_every_openai_compatible_shape():
    assert usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 5,
                              "prompt_tokens_details": {"cached_tokens": 800}}) == \
        {"input_tokens": 200, "output_tokens": 5, "cache_read_input_tokens": 800}
    deepseek = usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 5, "prompt_cache_hit_tokens": 900,
                                  "prompt_cache_miss_tokens": 100})
    assert deepseek == {"input_tokens": 100, "output_tokens": 5, "cache_read_input_tokens": 900}
    router = usage_from_openai({"prompt_tokens": 1000, "completion_tokens": 5,
                                "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300}})
    assert router["input_tokens"] == 100 and router["cache_creation_input_tokens"] == 300
    odd = usage_from_openai({"prompt_tokens": 10, "completion_tokens": 1, "cache_discount": 0.4,
                             "prompt_tokens_details": {"cached_tokens": 0, "cache_storage_tokens": 7}})
    assert odd["unmapped"] == {"cache_discount": 0.4, "details.cache_storage_tokens": 7}


async def test_unknown_cache_fields_are_kept_raw_in_telemetry(lynkr, write_pipeline, tmp_path):
    double = OpenAIDouble()
    double.extra_usage = {"prompt_cache_tier": "gold"}
    db = tmp_path / "t.duckdb"
    async with serving(double):
        pipe = write_pipeline(PIPE.format(provider=provider_yaml("openai", double.url, "up"), model="gpt-4o"))
        engine, url = await lynkr(pipe, telemetry_path=str(db))
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions",
                              json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}) as r:
                assert r.status == 200
                assert (await r.json())["usage"]["prompt_tokens_details"]["cached_tokens"] == 20
        for _ in range(100):
            if engine.writer.written:
                break
            engine.writer.flush()
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT usage_cache_read, usage_input, usage_detail FROM requests").fetchone()
    assert row[0] == 20 and row[1] == 100 and json.loads(row[2]) == {"prompt_cache_tier": "gold"}


# ---- lynkr replay ---------------------------------------------------------------------------------------

def test_replay_reports_the_share_read_from_the_provider_cache_per_turn(tmp_path, capsys):
    from lynkr.cli import main
    from lynkr.cli.replay import replay_sessions

    folder = tmp_path / "sess"
    folder.mkdir()
    for i in range(4):
        (folder / f"req_{i:03d}.json").write_text(json.dumps(
            {"path": "/v1/chat/completions", "headers": {"x-session-id": "s"},
             "body": _as_chat(agent_request(turns=i + 1))}))
    pipe = tmp_path / "p.yaml"
    pipe.write_text(PIPE.format(provider=provider_yaml("anthropic", "http://127.0.0.1:9", "up"), model="claude-sonnet-4-5"))
    rows = replay_sessions(str(folder), str(pipe))["a"]["sessions"][0]["requests"]
    shares = [r["cache"]["share"] for r in rows]
    assert shares[0] == 0.0 and all(s >= 0.8 for s in shares[1:]), shares
    assert main(["replay", str(folder), "--pipeline", str(pipe)]) == 0
    out = capsys.readouterr().out
    assert "cache" in out and "read from the provider's prompt cache" in out


def _as_chat(req: dict) -> dict:
    from lynkr.wire.openai_chat import from_canonical
    return from_canonical(req, req["model"])


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")
def test_replay_as_an_openai_chat_client_gets_lynkrs_breakpoints(capsys, monkeypatch, tmp_path):
    """`lynkr replay --as chat`: the Claude Code recording as Cursor would send it (no markers of
    its own) still reads most of its input from Anthropic's cache, because provider_call adds them."""
    from lynkr.cli import main

    monkeypatch.setenv("LYNKR_STATE_DIR", str(tmp_path / "state"))
    session = FIXTURES / "claude-code" / "fix-negative-stock"
    assert main(["replay", str(session), "--pipeline", str(ROOT / "pipelines" / "default.yaml"), "--as", "chat",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["a"]["sessions"][0]["requests"]
    assert all(r["cache"]["share"] >= 0.8 for r in rows[2:]), [r["cache"]["share"] for r in rows]
    added = [e["detail"]["prompt_cache"]["added"] for r in rows for e in r["events"] if "prompt_cache" in (e["detail"] or {})]
    assert len(added) == len(rows) and all(len(a) == 4 for a in added[1:])


def test_a_telemetry_file_from_before_the_cache_columns_is_still_priced(tmp_path, capsys):
    """Columns are only added: a file written without usage_cache_write_1h / usage_detail is read
    with them as NULL (1-hour writes then count as 5-minute ones)."""
    from lynkr.cli import main
    from lynkr.telemetry.schema import REQUEST_COLUMNS, STAGE_EVENT_COLUMNS

    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        cols = [(c, t) for c, t in REQUEST_COLUMNS if c not in ("usage_cache_write_1h", "usage_detail")]
        con.execute("CREATE TABLE requests (" + ", ".join(f"{c} {t}" for c, t in cols) + ")")
        con.execute("CREATE TABLE stage_events (" + ", ".join(f"{c} {t}" for c, t in STAGE_EVENT_COLUMNS) + ")")
        con.execute("INSERT INTO requests (id, provider, model, requested_model, usage_input, usage_cache_read, "
                    "usage_output, tokens_client, tokens_upstream) "
                    "VALUES ('r1', 'anthropic', 'claude-sonnet-4-5', 'claude-sonnet-4-5', 100, 900, 10, 1000, 1000)")
    assert main(["report", "savings", "--db", str(db), "--format", "json"]) == 0
    rows = {r["stage"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["TOTAL"]["usd_cost"] == pytest.approx((100 * 3.0 + 900 * 0.3 + 10 * 15.0) / 1e6)
    assert rows["(provider prompt cache)"]["usd_saved"] == pytest.approx(900 * (3.0 - 0.3) / 1e6)
    assert rows["(provider prompt cache)"]["tokens_cached"] == 900
