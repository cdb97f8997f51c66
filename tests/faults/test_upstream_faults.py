"""Fault suite: an upstream that misbehaves on command (tests/helpers/reliability_faults.py, in its own
process), each fault with and without a fallback. For each: what the client receives (status,
envelope, how a stream ends) and that no socket or task is left behind in Lynkr's process.

`LYNKR_FAULT_TABLE=path python -m pytest -q tests/faults` also writes the observed table to `path`.
"""
import asyncio
import os
import subprocess
import sys
import time

import aiohttp
import orjson
import pytest

from tests.conftest import ROOT, free_port
from tests.helpers.reliability_util import BODY, lynkr_app, open_sockets, live_tasks, settle

PIPE = """
version: 1
providers:
  up:   {{kind: anthropic, base_url: "{url}", {common}}}
  dead: {{kind: anthropic, base_url: "http://127.0.0.1:{dead}", {common}}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "{primary}:*"}}{on_error}}}
{backup}
telemetry: {{enabled: false}}
"""
# Short timeouts so a silent upstream costs a fraction of a second, not minutes; two tries per target;
# a Retry-After longer than 0.5 s is relayed to the client rather than waited out.
COMMON = ("timeouts: {connect: 1, read: 0.3, first_byte: 0.3}, "
          "retry: {attempts: 2, base_s: 0.01, max_s: 0.05, max_retry_after_s: 0.5}")
BACKUP = '  - {id: backup, uses: fallback, with: {to: "up:ok"}}'

OBSERVED: list[tuple] = []


@pytest.fixture(scope="module")
def upstream_url():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.reliability_faults", str(port)], cwd=str(ROOT),
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    import urllib.request
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/calls", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("fault upstream did not start")
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)
    table = os.environ.get("LYNKR_FAULT_TABLE")
    if table and OBSERVED:
        lines = ["| fault | stream | fallback | client saw | upstream calls | leaked sockets / tasks |",
                 "|---|---|---|---|---|---|"]
        for row in sorted(OBSERVED):
            lines.append("| " + " | ".join(str(c) for c in row) + " |")
        with open(table, "w") as f:
            f.write("\n".join(lines) + "\n")


async def _calls(url: str) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/calls") as r:
            return await r.json()


async def _reset_calls(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.delete(url + "/calls") as r:
            await r.read()


async def _request(url: str, model: str, stream: bool):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.post(url + "/v1/messages", json={**BODY, "model": model, "stream": stream},
                          timeout=aiohttp.ClientTimeout(total=30)) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


def _events(raw: bytes) -> list[str]:
    return [line[7:].strip() for line in raw.decode().splitlines() if line.startswith("event: ")]


def _summary(status: int, headers: dict, raw: bytes, stream: bool) -> str:
    if status == 200 and stream:
        evs = _events(raw)
        tail = "message_stop" if evs and evs[-1] == "message_stop" else f"event: error ({_sse_error(raw)['type']})"
        fb = f", fallback {headers['x-lynkr-fallback']}" if "x-lynkr-fallback" in headers else ""
        return f"200 SSE, {len(evs)} events, ends with {tail}{fb}"
    if status == 200:
        fb = f" via fallback {headers['x-lynkr-fallback']}" if "x-lynkr-fallback" in headers else ""
        return f"200 message{fb}"
    err = orjson.loads(raw)["error"]
    ra = f", retry-after {headers['retry-after']}" if "retry-after" in headers else ""
    return f"{status} {err['type']}{ra}"


def _sse_error(raw: bytes) -> dict:
    lines = raw.decode().splitlines()
    for i, line in enumerate(lines):
        if line == "event: error":
            return orjson.loads(lines[i + 1][6:])["error"]
    raise AssertionError(f"no error event in {raw[-300:]!r}")


# fault, stream → (status, anthropic error type or None, how a 200 stream must end)
NO_FALLBACK = {
    ("500", False): (500, "api_error"),
    ("429", False): (429, "rate_limit_error"),
    ("529", False): (529, "overloaded_error"),
    ("refused", False): (502, "api_error"),
    ("silence", False): (504, "timeout_error"),
    ("reset", False): (502, "api_error"),
    ("truncated", False): (502, "api_error"),
    ("500", True): (500, "api_error"),
    ("429", True): (429, "rate_limit_error"),
    ("529", True): (529, "overloaded_error"),
    ("refused", True): (502, "api_error"),
    ("silence", True): (504, "timeout_error"),
    ("reset", True): (200, "error"),         # mid-stream: the client already has bytes
    ("truncated", True): (200, "error"),
    ("nostop", True): (200, "error"),
    ("stall", True): (200, "error"),
    ("trickle", True): (200, "message_stop"),
}
# Failures after the first byte cannot be hidden by a fallback; failures before it must be.
MID_STREAM = {("reset", True), ("truncated", True), ("nostop", True), ("stall", True), ("trickle", True)}
CASES = sorted(NO_FALLBACK)


@pytest.mark.parametrize("fallback", [False, True], ids=["no-fallback", "fallback"])
@pytest.mark.parametrize("fault,stream", CASES, ids=[f"{f}-{'stream' if s else 'json'}" for f, s in CASES])
async def test_fault(upstream_url, tmp_path, fault, stream, fallback):
    primary = "dead" if fault == "refused" else "up"
    pipe = tmp_path / "pipeline.yaml"
    pipe.write_text(PIPE.format(url=upstream_url, dead=free_port(), common=COMMON, primary=primary,
                                on_error=", on_error: backup" if fallback else "", backup=BACKUP if fallback else ""))
    async with lynkr_app(pipe, tmp_path) as (app, url):
        # Warm up the same paths (pool, lazily created sessions) so the baseline is steady state.
        await _request(url, "ok", stream)
        await asyncio.sleep(0.05)
        sockets0, tasks0 = open_sockets(), live_tasks()
        await _reset_calls(upstream_url)

        status, headers, raw = await _request(url, fault, stream)
        calls = await _calls(upstream_url)
        sockets1, tasks1 = await settle(sockets0, tasks0)
        seen = _summary(status, headers, raw, stream)
        OBSERVED.append((fault, "yes" if stream else "no", "yes" if fallback else "no", seen,
                         ", ".join(f"{k}×{v}" for k, v in sorted(calls.items())) or "none",
                         f"{max(0, sockets1 - sockets0)} / {max(0, tasks1 - tasks0)}"))

        assert b"Traceback" not in raw
        if fallback and (fault, stream) not in MID_STREAM:
            assert status == 200, seen
            assert headers.get("x-lynkr-fallback") == "up:ok"
            if stream:
                assert _events(raw)[-1] == "message_stop"
            else:
                assert orjson.loads(raw)["content"][0]["text"]
            assert calls.get("ok") == 1
        else:
            want_status, want = NO_FALLBACK[(fault, stream)]
            assert status == want_status, seen
            if status == 200:
                evs = _events(raw)
                assert evs[0] == "message_start"
                if want == "message_stop":
                    assert evs[-1] == "message_stop" and "error" not in evs
                else:
                    # A well-formed end: an error event, and never a message_stop claiming success.
                    assert evs[-1] == "error" and "message_stop" not in evs, evs
                    assert _sse_error(raw)["message"]
                assert "x-lynkr-fallback" not in headers
            else:
                body = orjson.loads(raw)
                assert body["type"] == "error" and body["error"]["type"] == want and body["error"]["message"]
                if fault == "429":
                    assert headers.get("retry-after") == "1"
        # Retryable failures before the first byte are retried once (attempts: 2); others are not,
        # nor is a 429 whose Retry-After (1 s) is longer than max_retry_after_s — it is relayed.
        if fault in ("500", "529", "silence", "reset", "truncated") and (fault, stream) not in MID_STREAM:
            assert calls.get(fault) == 2, calls
        elif fault != "refused":
            assert calls.get(fault) == 1, calls

        assert sockets1 <= sockets0, f"sockets {sockets0} → {sockets1}"
        assert tasks1 <= tasks0, f"tasks {tasks0} → {tasks1}"


# -- the same upstream faults, seen by OpenAI clients (Chat Completions, Responses) ------------------

OPENAI = {
    "chat": ("/v1/chat/completions", lambda model, stream: {"model": model, "stream": stream,
                                                             "messages": [{"role": "user", "content": "hi"}]}),
    "responses": ("/v1/responses", lambda model, stream: {"model": model, "stream": stream, "input": "hi"}),
}
OPENAI_CASES = [("500", False, 500), ("429", False, 429), ("silence", True, 504), ("reset", True, 200), ("nostop", True, 200),
                ("stall", True, 200), ("trickle", True, 200)]


def _data_lines(raw: bytes) -> list[bytes]:
    return [line[6:] for line in raw.splitlines() if line.startswith(b"data: ")]


@pytest.mark.parametrize("client", sorted(OPENAI))
@pytest.mark.parametrize("fault,stream,want", OPENAI_CASES,
                         ids=[f"{f}-{'stream' if s else 'json'}" for f, s, _ in OPENAI_CASES])
async def test_fault_openai_clients(upstream_url, tmp_path, client, fault, stream, want):
    pipe = tmp_path / "pipeline.yaml"
    pipe.write_text(PIPE.format(url=upstream_url, dead=free_port(), common=COMMON, primary="up", on_error="", backup=""))
    path, body = OPENAI[client]
    async with lynkr_app(pipe, tmp_path) as (app, url):
        async def ask(model):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                async with s.post(url + path, json=body(model, stream), timeout=aiohttp.ClientTimeout(total=30)) as r:
                    return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()
        await ask("ok")
        await asyncio.sleep(0.05)
        sockets0, tasks0 = open_sockets(), live_tasks()
        status, headers, raw = await ask(fault)
        sockets1, tasks1 = await settle(sockets0, tasks0)
        if status != 200:
            seen = f"{status} {orjson.loads(raw)['error']['type']}"
        elif client == "chat":
            last = _data_lines(raw)[-1]
            seen = "200 SSE, ends with data: [DONE]" if last == b"[DONE]" else "200 SSE, ends with data: {error}"
        else:
            last = [line[7:] for line in raw.splitlines() if line.startswith(b"event: ")][-1].decode()
            seen = f"200 SSE, ends with {last}"
        OBSERVED.append((f"{fault} ({client} client)", "yes" if stream else "no", "no", seen,
                         "-", f"{max(0, sockets1 - sockets0)} / {max(0, tasks1 - tasks0)}"))

        assert status == want and b"Traceback" not in raw
        if status != 200:
            err = orjson.loads(raw)["error"]                 # the OpenAI envelope, not Anthropic's
            assert isinstance(err, dict) and err["message"] and "type" in err
            if fault == "429":
                assert headers.get("retry-after") == "1"
        elif client == "chat":
            data = _data_lines(raw)
            if fault == "trickle":
                assert data[-1] == b"[DONE]" and b'"finish_reason":"stop"' in data[-2]
            else:   # a failure mid-stream: an error object, and no [DONE] that would claim success
                assert b"[DONE]" not in data and b'"error"' in data[-1], data[-2:]
        else:
            names = [line[7:] for line in raw.splitlines() if line.startswith(b"event: ")]
            if fault == "trickle":
                assert names[-1] == b"response.completed"
            else:
                assert names[-1] == b"response.failed" and b"response.completed" not in names, names[-3:]
        assert sockets1 <= sockets0, f"sockets {sockets0} → {sockets1}"
        assert tasks1 <= tasks0, f"tasks {tasks0} → {tasks1}"
