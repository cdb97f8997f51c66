"""OpenTelemetry traces (`telemetry.otlp`): what a collector receives over OTLP/HTTP for requests
made with the official anthropic and openai SDKs, streaming and not, through a pipeline of real
stages to an Anthropic upstream double that reports prompt-cache usage."""
import asyncio
import json
import subprocess
import sys
import textwrap

import anthropic
import openai
import pytest

from lynkr.config import load_config
from lynkr.errors import ConfigError
from tests.conftest import free_port, serving
from tests.helpers.anthropic_upstream import AnthropicUpstream, text_message
from tests.helpers.otlp_receiver import OTLPReceiver

KEY = "alice-secret-key-0123456789"

PIPE = """
version: 1
name: traced
state_dir: "%(state)s"
server: {shed: {enabled: false}}
keys:
  alice: {secret: "%(key)s", team: payments}
teams:
  payments: {}
providers:
  up: {kind: anthropic, base_url: "%(up)s"}
stages:
  - {id: exact, uses: exact_cache}
  - {id: json, uses: toon, with: {min_chars: 50}}
  - {id: score, uses: score}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
telemetry:
  enabled: false
  otlp: {endpoint: "%(otlp)s", service_name: lynkr-test, timeout_s: 2}
"""

USAGE = {"input_tokens": 12, "output_tokens": 3, "cache_read_input_tokens": 300, "cache_creation_input_tokens": 40}

ROWS = json.dumps([{"name": f"file{i}.py", "size": i * 100, "kind": "file"} for i in range(40)])
LS = {"name": "ls", "description": "list files", "input_schema": {"type": "object", "properties": {}}}
TOOL_TURN = [{"role": "user", "content": "which files are there?"},
             {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "ls", "input": {}}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": ROWS}]}]

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


def answer(body):
    msg = text_message("Three files and a folder.")
    msg["usage"] = dict(USAGE)
    return msg


async def settled(engine) -> None:
    """Every finished request's after hooks done, then its spans made and exported."""
    for _ in range(2000):
        if not engine.finishing:
            break
        await asyncio.sleep(0.005)
    assert not engine.finishing, "after hooks still running"
    assert await asyncio.to_thread(engine.tracing.flush)


@pytest.fixture
async def traced(write_pipeline, lynkr, tmp_path):
    """(engine, proxy URL, upstream double, OTLP receiver)."""
    async with serving(AnthropicUpstream(answer)) as up, serving(OTLPReceiver()) as rx:
        engine, url = await lynkr(write_pipeline(PIPE % {"key": KEY, "up": up.url, "otlp": rx.url, "state": tmp_path}))
        yield engine, url, up, rx


async def test_one_span_per_request_with_genai_attributes_stage_and_upstream_children(traced):
    """Four requests (anthropic and openai SDK, each streaming and not) and a repeat answered by
    the exact cache give five request spans: GenAI attributes with usage including the prompt
    cache's reads and writes (input tokens counting them, as the convention says), Lynkr's tier,
    cache outcome, pipeline and key name; a child span per stage that ran, named by its id, with
    its outcome and the tokens toon saved; under provider_call's span the upstream call's."""
    engine, url, up, rx = traced
    a = anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0)
    o = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    await a.messages.create(model="claude-one", max_tokens=50, messages=TOOL_TURN, tools=[LS])
    async with a.messages.stream(model="claude-two", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as s:
        streamed = await s.get_final_message()
    assert streamed.content[0].text == "Three files and a folder."
    await o.chat.completions.create(model="claude-three", messages=[{"role": "user", "content": "hello"}])
    chunks = [c async for c in await o.chat.completions.create(
        model="claude-four", messages=[{"role": "user", "content": "hey"}], stream=True,
        stream_options={"include_usage": True})]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Three files and a folder."
    again = await a.messages.create(model="claude-one", max_tokens=50, messages=TOOL_TURN, tools=[LS])
    assert again.content[0].text == "Three files and a folder."
    await settled(engine)

    spans = {s.attributes["gen_ai.request.model"]: s for s in rx.requests()}
    assert len(rx.requests()) == 5 and len(up.requests) == 4
    assert rx.content_types == {"application/x-protobuf"}
    assert {s.resource["service.name"] for s in rx.spans} == {"lynkr-test"}
    for model in ("claude-one", "claude-two", "claude-three", "claude-four"):
        span = spans[model] if model != "claude-one" else next(
            s for s in rx.requests() if s.attributes["gen_ai.request.model"] == model and s.attributes["lynkr.cache"] == "miss")
        at = span.attributes
        assert span.name == f"chat {model}"
        assert at["gen_ai.operation.name"] == "chat"
        assert at["gen_ai.provider.name"] == at["gen_ai.system"] == "anthropic"
        assert at["gen_ai.response.model"] == "claude-test"
        assert at["gen_ai.usage.input_tokens"] == 12 + 300 + 40
        assert at["gen_ai.usage.output_tokens"] == 3
        assert at["gen_ai.usage.cache_read.input_tokens"] == 300
        assert at["gen_ai.usage.cache_creation.input_tokens"] == 40
        assert at["lynkr.cache"] == "miss" and at["lynkr.pipeline"] == "traced"
        assert at["lynkr.key"] == "alice" and at["lynkr.team"] == "payments"
        assert at["lynkr.tier"] in ("SIMPLE", "MEDIUM", "COMPLEX", "REASONING")
        assert at["http.response.status_code"] == 200 and not span.error
        stages = {c.name: c for c in span.children if c.kind == "INTERNAL" and c.attributes["lynkr.stage.phase"] == "run"}
        assert set(stages) == {"exact", "json", "score", "call"}
        assert {n: c.attributes["lynkr.stage.outcome"] for n, c in stages.items()} == {
            "exact": "ok", "json": "ok", "score": "ok", "call": "responded"}
        assert any(c.name == "exact" and c.attributes["lynkr.stage.phase"] == "after" for c in span.children)
        call = stages["call"]
        [upstream] = call.children
        assert upstream.kind == "CLIENT" and upstream.name == f"chat {model}"
        assert upstream.attributes["gen_ai.request.model"] == model and upstream.attributes["lynkr.provider"] == "up"
        assert all(c.trace_id == span.trace_id for c in [*span.children, upstream])

    toon = next(c for c in next(s for s in rx.requests() if s.attributes["lynkr.cache"] == "miss"
                                and s.attributes["gen_ai.request.model"] == "claude-one").children if c.name == "json")
    assert toon.attributes["lynkr.stage.tokens_saved"] > 0
    assert toon.attributes["lynkr.stage.tokens_before"] - toon.attributes["lynkr.stage.tokens_after"] \
        == toon.attributes["lynkr.stage.tokens_saved"]

    hit = next(s for s in rx.requests() if s.attributes["lynkr.cache"] == "exact")
    assert not any(c.kind == "CLIENT" for s in hit.children for c in [s, *s.children])
    assert [c.attributes["lynkr.stage.outcome"] for c in hit.children
            if c.name == "exact" and c.attributes["lynkr.stage.phase"] == "run"] == ["responded"]


async def test_client_traceparent_is_honoured_and_propagated_upstream(traced):
    """A client's `traceparent` makes the request span its child (same trace id, the client's
    span as parent), and the upstream request carries a `traceparent` of the same trace whose
    parent is the upstream call's span, for both SDKs, streaming or not."""
    engine, url, up, rx = traced
    header = {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    a = anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0, default_headers=header)
    o = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, default_headers=header)
    await a.messages.create(model="claude-a", max_tokens=50, messages=[{"role": "user", "content": "one"}])
    async with a.messages.stream(model="claude-b", max_tokens=50, messages=[{"role": "user", "content": "two"}]) as s:
        await s.get_final_message()
    await o.chat.completions.create(model="claude-c", messages=[{"role": "user", "content": "three"}])
    async for _ in await o.chat.completions.create(model="claude-d", messages=[{"role": "user", "content": "four"}],
                                                   stream=True):
        pass
    # Without a traceparent: a trace of its own, still propagated.
    await anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0).messages.create(
        model="claude-e", max_tokens=50, messages=[{"role": "user", "content": "five"}])
    await settled(engine)

    requests = {s.attributes["gen_ai.request.model"]: s for s in rx.requests()}
    assert sorted(requests) == ["claude-a", "claude-b", "claude-c", "claude-d", "claude-e"]
    client_spans = {s.span_id: s for s in rx.spans if s.kind == "CLIENT"}
    for body, headers in zip(up.requests, up.headers):
        span = requests[body["model"]]
        if body["model"] == "claude-e":
            assert span.trace_id != CLIENT_TRACE and span.parent_span_id == ""
        else:
            assert span.trace_id == CLIENT_TRACE and span.parent_span_id == CLIENT_SPAN
        version, trace_id, parent_id, flags = {k.lower(): v for k, v in headers.items()}["traceparent"].split("-")
        assert (version, trace_id) == ("00", span.trace_id) and int(flags, 16) & 1     # sampled
        upstream = client_spans[parent_id]
        assert upstream.attributes["gen_ai.request.model"] == body["model"]
        call = next(c for c in span.children if c.name == "call")
        assert upstream.parent_span_id == call.span_id


async def test_each_upstream_attempt_is_a_span_and_a_failed_one_says_why(traced):
    """An upstream 529 that the retry policy retries: two CLIENT spans under provider_call's, the
    first an error with the status and type, each sent upstream as its own traceparent."""
    engine, url, up, rx = traced
    up.fail_next.append((529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}))
    a = anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0)
    m = await a.messages.create(model="claude-r", max_tokens=50, messages=[{"role": "user", "content": "retry me"}])
    assert m.content[0].text == "Three files and a folder."
    await settled(engine)

    [span] = rx.requests()
    [call] = [c for c in span.children if c.name == "call"]
    first, second = sorted(call.children, key=lambda c: c.start_ns)
    assert first.error and first.attributes["http.response.status_code"] == 529
    assert first.attributes["error.type"] == "overloaded_error"
    assert not second.error and "error.type" not in second.attributes
    sent = [{k.lower(): v for k, v in h.items()}["traceparent"].split("-")[2] for h in up.headers]
    assert sent == [first.span_id, second.span_id]
    assert span.attributes["http.response.status_code"] == 200 and not span.error


async def test_collector_down_fails_no_request(write_pipeline, lynkr, tmp_path):
    """With nothing listening at the OTLP endpoint every request is answered as usual, streaming
    or not, through both SDKs; the spans are dropped, and the server stops cleanly."""
    async with serving(AnthropicUpstream(answer)) as up:
        dead = f"http://127.0.0.1:{free_port()}"
        engine, url = await lynkr(write_pipeline(PIPE % {"key": KEY, "up": up.url, "otlp": dead, "state": tmp_path}))
        a = anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0)
        o = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        for i in range(3):
            m = await a.messages.create(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": f"q{i}"}])
            assert m.content[0].text == "Three files and a folder."
            async with a.messages.stream(model="claude-x", max_tokens=50,
                                         messages=[{"role": "user", "content": f"s{i}"}]) as s:
                assert (await s.get_final_message()).usage.output_tokens == 3
            c = await o.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": f"o{i}"}])
            assert c.choices[0].message.content == "Three files and a folder."
        assert len(up.requests) == 9
        assert await asyncio.to_thread(engine.tracing.flush) is not None     # returns; the export failed


def test_endpoint_that_is_not_a_url_is_a_config_error_with_file_path_and_line(tmp_path):
    """`otlp.endpoint` must be an http(s) URL: anything else is refused at load time, naming the
    file, the YAML path and the line; a misspelt option gets a "did you mean"."""
    p = tmp_path / "p.yaml"
    p.write_text(PIPE % {"key": KEY, "up": "http://127.0.0.1:1", "otlp": "collector:4318", "state": tmp_path})
    with pytest.raises(ConfigError) as e:
        load_config(p)
    line = next(i for i, t in enumerate(p.read_text().splitlines(), 1) if "otlp:" in t)
    assert str(e.value).startswith(f"{p}:{line}: telemetry.otlp.endpoint: 'collector:4318' is not an http(s) URL")
    p.write_text(p.read_text().replace('endpoint: "collector:4318"', 'endpont: "http://c:4318"'))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "telemetry.otlp.endpont: unknown option 'endpont'" in str(e.value) and "did you mean 'endpoint'" in str(e.value)


START = textwrap.dedent("""
    import asyncio, sys
    %s
    from lynkr.engine.runtime import Engine
    async def main():
        engine = Engine(sys.argv[1], watch=False)
        await engine.start()
        x = engine.exchange("anthropic", {"model": "m", "messages": []}, original={}, headers={})
        print(x.trace is None, sorted(m for m in sys.modules if m.startswith(("opentelemetry", "lynkr.telemetry.tracing"))))
        await engine.stop()
    asyncio.run(main())
""")


def _start(pipeline, blocker: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", START % blocker, str(pipeline)], capture_output=True, text=True,
                          timeout=120)


def test_without_otlp_nothing_of_opentelemetry_is_loaded(tmp_path):
    """Without `telemetry.otlp` a request gets no trace and no OpenTelemetry module is imported."""
    p = tmp_path / "p.yaml"
    p.write_text(PIPE.split("telemetry:")[0] % {"key": KEY, "up": "http://127.0.0.1:1", "state": tmp_path} + "telemetry: {enabled: false}\n")
    out = _start(p)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True []"


def test_otlp_without_the_packages_is_a_start_error_naming_the_extra(tmp_path):
    """`otlp` set but the OpenTelemetry SDK not importable: `lynkr run` exits at start with one
    line naming the file, `telemetry.otlp` and the extra to install, and no traceback."""
    p = tmp_path / "p.yaml"
    p.write_text(PIPE % {"key": KEY, "up": "http://127.0.0.1:1", "otlp": "http://127.0.0.1:4318", "state": tmp_path})
    run = ("import sys; sys.modules['opentelemetry.sdk'] = None; from lynkr.cli import main; "
           "raise SystemExit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", run, "run", str(p), "--port", str(free_port()), "--no-reload"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    line = next(i for i, t in enumerate(p.read_text().splitlines(), 1) if "otlp:" in t)
    assert f"✗ {p}:{line}: telemetry.otlp: the OpenTelemetry packages are not installed" in out.stderr and "pip install 'lynkr[otel]'" in out.stderr
    assert "Traceback" not in out.stderr
