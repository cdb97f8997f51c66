"""Fuzzed and adversarial bodies on the three client endpoints: never a 5xx, never a dropped
connection, never a traceback, every error in the client's own shape, and afterwards the process is
healthy: no breaker opened by bad requests, /v1/health/providers and /metrics answer (and /metrics
stays small), and every 200 has its telemetry row or a counted drop.

CI runs a fixed seed: 60 hypothesis examples per strategy and 1,500 mutated copies of the recorded
Claude Code / Codex requests (tests/helpers/fuzz_mutate.py). Against the code before the edge
validator that mutation count found every class of issue 23's findings (5xx from wrong-typed
fields, answers outside the client's shape, requests without a model, the breaker opened by bad
bodies, rows missing from telemetry). A nightly-style campaign:
    LYNKR_FUZZ_MUTATIONS=20000 LYNKR_FUZZ_SEED=$RANDOM LYNKR_FUZZ_EXAMPLES=2000 LYNKR_FUZZ_RANDOM=1 \
        python -m pytest -q -s tests/test_fuzz.py
"""
import http.client
import json
import os
from urllib.parse import urlparse

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES
from tests.helpers.fuzz_mutate import Outcome, base_requests, mutate, send_and_judge
from tests.helpers.reliability_util import ThreadedLynkr, telemetry_rows

EXAMPLES = int(os.environ.get("LYNKR_FUZZ_EXAMPLES", "60"))
MUTATIONS = int(os.environ.get("LYNKR_FUZZ_MUTATIONS", "1500"))
SEED = int(os.environ.get("LYNKR_FUZZ_SEED", "23"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("LYNKR_FUZZ_RANDOM"),
                suppress_health_check=list(HealthCheck))

# Shedding is off here: hypothesis runs in this process and competes for the GIL with the server's
# loop thread, which reads as event-loop lag. Shedding has its own tests (test_limits.py).
PIPE = """
version: 1
server: {{max_body_bytes: 262144, max_messages: 200, shed: {{enabled: false}}}}
providers:
  up: {{kind: anthropic, base_url: "{upstream}", retry: {{attempts: 1}}}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
telemetry: {{flush_interval_s: 0.2}}
"""

PATHS = ["/v1/messages", "/v1/chat/completions", "/v1/responses"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ThreadedLynkr(PIPE, tmp_path_factory.mktemp("fuzz")).start()
    yield srv
    srv.stop()


def send(server, path: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes, dict]:
    u = urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def check(status: int, body: bytes, headers: dict, path: str) -> None:
    assert status < 500, (status, body[:500])
    assert b"Traceback" not in body and b'File "' not in body, body[:500]
    if status >= 400:
        err = orjson.loads(body)          # a JSON error in the client's own envelope
        if path == "/v1/messages":
            assert err["type"] == "error" and err["error"]["message"], err
        else:
            assert isinstance(err["error"], dict) and err["error"]["message"], err


# -- strategies ------------------------------------------------------------------------------------

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
scalars = st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**63 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False) | text
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) |
                           st.dictionaries(text, kids, max_size=4), max_leaves=12)
roles = st.sampled_from(["user", "assistant", "system", "developer", "tool", "function", ""]) | json_values


def maybe(strategy):
    return st.none() | strategy | json_values


block_types = st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking",
                               "document", "input_text", "output_text", "input_image", "server_tool_use", "???"])
blocks = st.fixed_dictionaries({"type": block_types}, optional={
    "text": maybe(text), "id": maybe(text), "name": maybe(text), "input": maybe(json_values),
    "tool_use_id": maybe(text), "content": maybe(json_values), "source": maybe(json_values),
    "thinking": maybe(text), "signature": maybe(text), "cache_control": maybe(json_values),
    "is_error": maybe(st.booleans())})
content = text | st.lists(blocks, max_size=4) | json_values

anthropic_body = st.fixed_dictionaries({}, optional={
    "model": maybe(text), "max_tokens": maybe(st.integers(min_value=-10, max_value=10**9)),
    "messages": st.lists(st.fixed_dictionaries({"role": roles}, optional={"content": content}), max_size=5)
    | json_values,
    "system": maybe(content), "stream": maybe(st.booleans()),
    "tools": maybe(st.lists(st.fixed_dictionaries({}, optional={"name": maybe(text), "description": maybe(text),
                                                                   "input_schema": maybe(json_values),
                                                                   "type": maybe(text)}), max_size=3)),
    "tool_choice": maybe(json_values), "metadata": maybe(json_values), "thinking": maybe(json_values),
    "temperature": maybe(st.floats(allow_nan=False)), "stop_sequences": maybe(st.lists(text, max_size=3)),
})

tool_calls = st.lists(st.fixed_dictionaries({}, optional={
    "id": maybe(text), "type": maybe(text),
    "function": maybe(st.fixed_dictionaries({}, optional={"name": maybe(text), "arguments": maybe(text)}))}),
    max_size=3)
chat_body = st.fixed_dictionaries({}, optional={
    "model": maybe(text),
    "messages": st.lists(st.fixed_dictionaries({"role": roles}, optional={
        "content": maybe(content), "tool_calls": maybe(tool_calls), "tool_call_id": maybe(text),
        "name": maybe(text), "reasoning_content": maybe(text)}), max_size=5) | json_values,
    "stream": maybe(st.booleans()), "stream_options": maybe(json_values),
    "tools": maybe(st.lists(st.fixed_dictionaries({"type": st.just("function") | text}, optional={
        "function": maybe(st.fixed_dictionaries({}, optional={"name": maybe(text), "parameters": maybe(json_values),
                                                               "description": maybe(text)}))}), max_size=3)),
    "tool_choice": maybe(json_values), "max_tokens": maybe(st.integers(min_value=-2**63, max_value=2**63 - 1)), "max_completion_tokens": maybe(st.integers(min_value=-2**63, max_value=2**63 - 1)),
    "n": maybe(st.integers(min_value=-2**63, max_value=2**63 - 1)), "response_format": maybe(json_values), "temperature": maybe(st.floats(allow_nan=False)),
})

items = st.fixed_dictionaries({"type": st.sampled_from(["message", "function_call", "function_call_output",
                                                        "reasoning", "custom_tool_call", "local_shell_call", "?"])},
                              optional={"role": roles, "content": maybe(content), "call_id": maybe(text),
                                        "name": maybe(text), "arguments": maybe(text), "output": maybe(json_values),
                                        "summary": maybe(json_values), "encrypted_content": maybe(text)})
responses_body = st.fixed_dictionaries({}, optional={
    "model": maybe(text), "input": text | st.lists(items, max_size=5) | json_values,
    "instructions": maybe(text), "stream": maybe(st.booleans()), "tools": maybe(json_values),
    "tool_choice": maybe(json_values), "reasoning": maybe(json_values), "store": maybe(st.booleans()),
    "previous_response_id": maybe(text), "max_output_tokens": maybe(st.integers(min_value=-2**63, max_value=2**63 - 1)), "include": maybe(json_values),
})

BODIES = {"/v1/messages": anthropic_body, "/v1/chat/completions": chat_body, "/v1/responses": responses_body}


# -- the tests ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_structured_bodies_never_5xx(server, path):
    @FUZZ
    @given(body=BODIES[path])
    def run(body):
        status, out, headers = send(server, path, orjson.dumps(body))
        check(status, out, headers, path)

    run()


@pytest.mark.parametrize("path", PATHS)
def test_any_json_never_5xx(server, path):
    @FUZZ
    @given(body=json_values)
    def run(body):
        status, out, headers = send(server, path, orjson.dumps(body))
        check(status, out, headers, path)

    run()


@FUZZ
@given(raw=st.binary(max_size=300), path=st.sampled_from(PATHS),
       encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity", "bogus"]))
def test_raw_bytes_never_5xx(server, raw, path, encoding):
    headers = {"content-encoding": encoding} if encoding else {}
    status, out, h = send(server, path, raw, headers)
    check(status, out, h, path)


ADVERSARIAL = [
    b"",
    b"null",
    b"[]",
    b'{"messages": null}',
    b'{"messages": [' + b"{}," * 5000 + b"{}]}",                       # over max_messages
    b"[" * 100_000 + b"]" * 100_000,                                   # nesting beyond any parser's depth
    b'{"model": "x", "messages": [{"role": "user", "content": "' + b"\\ud800" + b'"}]}',   # lone surrogate
    b'{"model": 1e999999, "messages": []}',
    b'{"model": "x", "max_tokens": 18446744073709551616, "messages": [{"role": "user", "content": "hi"}]}',
    b'{"messages": [{"role": "user", "content": "hi"}], "stream": true, "model": {"$gt": ""}}',
    b'{"messages": [{"role": "user", "content": [{"type": "tool_result", "content": [[[[[]]]]]}]}]}',
    b'{"input": [{"type": "function_call_output", "output": {"a": [1, {"b": null}]}}], "model": "m"}',
    b"\xef\xbb\xbf" + b'{"messages": [{"role": "user", "content": "bom"}]}',
    b'{"messages": [{"role": "user", "content": "x"}]}' + b" trailing garbage",
    json.dumps({"messages": [{"role": "user", "content": "x" * 300_000}]}).encode(),   # over max_body_bytes
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("raw", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_bodies(server, path, raw):
    status, out, h = send(server, path, raw)
    check(status, out, h, path)


def test_process_stays_up_and_healthy(server):
    u = urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", "/health/ready")
    r = conn.getresponse()
    assert r.status == 200, r.read()
    conn.close()
    # and still answers a normal request
    status, out, _ = send(server, "/v1/messages", orjson.dumps(
        {"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
    assert status == 200, out


def test_published_openapi_covers_the_client_endpoints():
    from tests.conftest import ROOT

    spec = json.loads((ROOT / "schemas" / "openapi.json").read_text())
    assert spec["openapi"].startswith("3.")
    for path in PATHS:
        op = spec["paths"][path]["post"]
        assert op["requestBody"]["content"]["application/json"]["schema"]
        assert {"200", "400", "401", "413", "429"} <= set(op["responses"])


MUTATED_PIPE = """
version: 1
server: {{shed: {{enabled: false}}}}
providers:
  up: {{kind: anthropic, base_url: "{upstream}", retry: {{attempts: 1}}}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
telemetry: {{flush_interval_s: 0.2}}
"""


def _get(server, path: str) -> tuple[int, bytes]:
    u = urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_mutated_client_requests(tmp_path):
    """Mutated copies of real Claude Code, Codex and Chat requests (fixed seed) on keep-alive
    connections: 0 × 5xx, 0 dropped connections, 0 errors outside the client's shape; then no
    breaker has a failure on record, health and metrics answer, /metrics is under 100 KB, and
    every 200 has a telemetry row or a counted drop."""
    import random

    assert FIXTURES.is_dir(), "needs ../shared/fixtures (the recorded client requests)"
    bases = base_requests(FIXTURES)
    rng = random.Random(SEED)
    srv = ThreadedLynkr(MUTATED_PIPE, tmp_path).start()
    out = Outcome()
    try:
        u = urlparse(srv.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        for _ in range(MUTATIONS):
            path, body = rng.choice(bases)
            conn = send_and_judge(conn, path, mutate(body, rng), out)
        conn.close()
        health_status, health = _get(srv, "/v1/health/providers")
        metrics_status, metrics = _get(srv, "/metrics")
        writer = srv.app["engine"].writer
        writer.flush()
        rows_200 = telemetry_rows(tmp_path / "telemetry.duckdb", where="WHERE status = 200")
        dropped = writer.dropped
    finally:
        srv.stop()
    print(f"\nseed {SEED}: {out.line()}; /metrics {len(metrics)} bytes; "
          f"telemetry: {rows_200} rows of 200s + {dropped} dropped for {out.ok} × 200")
    assert not out.server_errors, out.server_errors[:5]
    assert not out.dropped, out.dropped[:5]
    assert not out.off_shape, out.off_shape[:5]
    assert health_status == 200, health[:300]
    breakers = orjson.loads(health)["breakers"]
    assert all(b["recent_failures"] == 0 and b["opens"] == 0 for b in breakers.values()), breakers
    assert metrics_status == 200 and len(metrics) < 100_000
    assert rows_200 + dropped >= out.ok
