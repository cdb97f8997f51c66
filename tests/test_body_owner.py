"""A stage that edits the request in place is seen upstream, whatever the request's size.

The request's parts are serialised once and their JSON reused for the upstream body (lynkr.body);
a stage that mutates a part in place instead of replacing it must not leave that JSON stale. These
tests redact a secret in the last user message in place, on a small request and on the 62 KB
Claude Code request, through an Anthropic-kind and an OpenAI-kind upstream, alone and after the
built-in stages that serialise the request: the secret must never reach the upstream."""
import json

import aiohttp
import orjson
import pytest

from tests.conftest import FIXTURES, serving
from tests.helpers.anthropic_upstream import AnthropicUpstream
from tests.helpers.body_stages import SECRET
from tests.helpers.wire_upstreams import OpenAIUpstream

CLAUDE_CODE = FIXTURES / "claude-code" / "fix-negative-stock" / "req_004.json"
STAGES = "tests/helpers/body_stages.py"

PROVIDERS = {
    "anthropic": '  up: {kind: anthropic, base_url: "%s", api_key: test, strip_billing: false}\n',
    "openai": '  up: {kind: openai, base_url: "%s/v1", api_key: test}\n',
}
# The built-in stages that serialise the request's parts before the custom stage runs.
BUILT_INS = """  - {id: exact, uses: exact_cache, with: {persist: false}}
  - {id: tools, uses: strip_tools, with: {strip: false}}
"""


def pipeline(root, kind: str, url: str, before: str, stage: str = "RedactInPlace") -> str:
    return ("version: 1\nserver: {shed: {enabled: false}}\ntelemetry: {enabled: false}\nproviders:\n"
            + PROVIDERS[kind] % url + "stages:\n" + before
            + f"  - {{id: redact, uses: {root}/{STAGES}:{stage}}}\n"
            + "  - {id: call, uses: provider_call, with: {to: \"up:model-test\"}}\n")


def client_body(size: str, turn: int) -> dict:
    said = {"type": "text", "text": f"deploy with the key {SECRET} please (turn {turn})"}
    if size == "small":
        return {"model": "claude-test", "max_tokens": 32, "messages": [{"role": "user", "content": [said]}]}
    if not CLAUDE_CODE.is_file():
        pytest.fail(f"needs the Claude Code fixture {CLAUDE_CODE}")
    body = json.loads(CLAUDE_CODE.read_text())["body"]
    body["stream"] = False
    body["messages"][-1]["content"].append(said)
    return body


def as_claude_code_sends(body: dict) -> bytes:
    """Compact UTF-8 JSON, JSON.stringify's form: the bytes the parts' JSON is read from."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("size", ["small", "claude-code-62k"])
@pytest.mark.parametrize("kind", ["anthropic", "openai"])
@pytest.mark.parametrize("before", ["alone", "after-built-ins"])
async def test_an_in_place_redaction_reaches_the_upstream(size, kind, before, lynkr, write_pipeline, pytestconfig):
    up = AnthropicUpstream() if kind == "anthropic" else OpenAIUpstream()
    async with serving(up):
        path = write_pipeline(pipeline(pytestconfig.rootpath, kind, up.url, BUILT_INS if before != "alone" else ""))
        _engine, url = await lynkr(path)
        async with aiohttp.ClientSession() as s:
            for turn in range(2):       # the second turn's earlier parts are the first's JSON, reused
                raw = as_claude_code_sends(client_body(size, turn))
                assert SECRET.encode() in raw and (size == "small" or len(raw) > 60_000)
                async with s.post(url + "/v1/messages", data=raw, headers={
                        "content-type": "application/json", "x-claude-code-session-id": "s-body"}) as r:
                    answer = await r.read()
                    assert r.status == 200, answer[:300]
    assert len(up.requests) == 2
    for sent in up.requests:
        text = orjson.dumps(sent)
        assert SECRET.encode() not in text, "the secret the stage removed went upstream"
        assert b"[redacted]" in text


async def test_a_stage_that_declares_copy_on_write_and_edits_in_place_is_a_loud_error(lynkr, write_pipeline, pytestconfig):
    """Under LYNKR_CHECK_EDITS (the test suite's setting) a false `edits = "copy-on-write"` is an
    error response naming the stage, and nothing goes upstream."""
    from lynkr.body import CHECK_EDITS
    assert CHECK_EDITS, "tests/conftest.py sets LYNKR_CHECK_EDITS=1"
    up = AnthropicUpstream()
    async with serving(up):
        path = write_pipeline(pipeline(pytestconfig.rootpath, "anthropic", up.url, BUILT_INS, "ClaimsCopyOnWrite"))
        _engine, url = await lynkr(path)
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/messages", data=as_claude_code_sends(client_body("claude-code-62k", 0)),
                              headers={"content-type": "application/json"}) as r:
                answer = await r.json()
    assert r.status == 500 and answer["type"] == "error"
    assert "stage 'redact' declares edits = \"copy-on-write\" but changed a part of the request in place" \
        in answer["error"]["message"]
    assert up.requests == []


def test_an_unknown_edits_declaration_is_a_load_error_naming_the_stage(write_pipeline, pytestconfig):
    from lynkr.engine import load_pipeline
    from lynkr.errors import ConfigError
    path = write_pipeline(pipeline(pytestconfig.rootpath, "anthropic", "http://127.0.0.1:9", "", "BadEdits"))
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, dry_run=True)
    assert "stage 'redact'" in str(err.value) and "'copy_on_write'" in str(err.value)
    assert "in-place, copy-on-write" in str(err.value) and str(path) in str(err.value)


async def test_the_shipped_pipeline_never_drops_the_parts_json(lynkr, monkeypatch, tmp_path):
    """Every built-in stage declares copy-on-write, so through default.yaml the JSON read from the
    client's bytes is never dropped: the upstream body is joined from it, not serialised again."""
    from lynkr.body import Body
    from tests.conftest import ROOT
    from tests.helpers.anthropic_upstream import text_message

    dropped = []
    real = Body.forget
    monkeypatch.setattr(Body, "forget", lambda self: dropped.append(1) or real(self))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("LYNKR_STATE_DIR", str(tmp_path / "state"))
    async with serving(AnthropicUpstream(lambda body: text_message("ok"))) as up:
        monkeypatch.setenv("ANTHROPIC_UPSTREAM_URL", up.url)
        _engine, url = await lynkr(ROOT / "pipelines" / "default.yaml")
        async with aiohttp.ClientSession() as s:
            for turn in range(2):
                async with s.post(url + "/v1/messages", data=as_claude_code_sends(client_body("claude-code-62k", turn)),
                                  headers={"content-type": "application/json", "x-api-key": "k",
                                           "x-claude-code-session-id": "s-default"}) as r:
                    assert r.status == 200, await r.text()
    assert len(up.requests) == 2 and dropped == []
