"""What a person sees from `lynkr run`: the first screen (routes and keys, client settings,
dashboard, telemetry), one log line per request in text or JSON (no prompt text), the drain
message on SIGTERM, one-line errors for a busy port, a directory or an unusable state folder,
`lynkr validate` reporting every error of a file, and CI=true turning a skip into a failure."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import free_port
from tests.helpers.reliability_util import LynkrProcess

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "pipelines" / "demo.yaml"
SECRET_WORDS = "the purple elephant sings at midnight"


def _lynkr(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "lynkr.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, cwd=cwd)


async def _five_requests(url: str) -> None:
    bodies = [("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 20,
                                "messages": [{"role": "user", "content": SECRET_WORDS}]}),
              ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 20,
                                "messages": [{"role": "user", "content": SECRET_WORDS}]}),      # exact-cache hit
              ("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}),
              ("/v1/responses", {"model": "gpt-5-codex", "input": "list the files", "stream": True}),
              ("/v1/messages", {"model": "", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})]
    async with aiohttp.ClientSession(url, headers={"user-agent": "claude-cli/2.1.3 (external, cli)"}) as s:
        for path, body in bodies:
            async with s.post(path, json=body) as r:
                await r.read()


async def _serve_and_stop(tmp_path, *args) -> str:
    env = {"LYNKR_STATE_DIR": str(tmp_path / "state"), "LYNKR_TELEMETRY": str(tmp_path / "t.duckdb"),
           "LYNKR_ADMIN_TOKEN": "test-admin-token"}
    pipeline = tmp_path / "demo.yaml"            # LynkrProcess writes its log beside the pipeline
    pipeline.write_text(DEMO.read_text())
    lynkr = LynkrProcess(pipeline, cwd=tmp_path, extra_env=env, args=args)
    try:
        await lynkr.ready()
        await _five_requests(lynkr.url)
        await asyncio.sleep(0.5)          # the request lines follow the telemetry rows (~50 ms)
        lynkr.signal(signal.SIGTERM)
        assert await lynkr.wait() == 0
        return lynkr.output()
    finally:
        lynkr.kill()


async def test_first_screen_request_lines_and_drain(tmp_path):
    out = await _serve_and_stop(tmp_path)
    assert "pipeline 'demo'" in out and "(1 worker)" in out
    assert "tier MEDIUM" in out and "→ demo:demo-medium" in out and "no key needed" in out
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:" in out
    assert "model_providers.lynkr=" in out and "/v1" in out                      # Codex
    assert "OpenAI base URL http://127.0.0.1:" in out                           # Cursor
    assert "/dashboard?token=test-admin-token" in out
    assert str(tmp_path / "t.duckdb") in out
    lines = [line for line in out.splitlines() if " req_" in line]
    assert len(lines) == 4, out          # the bad model name was refused before the pipeline: no row
    assert all(" info  claude-code " in line for line in lines), lines
    assert "claude-sonnet-4-5 → demo:demo-" in lines[0] and " 200 " in lines[0] and " tok " in lines[0]
    assert any("cache exact" in line for line in lines), lines
    assert any("openai_responses  gpt-5-codex → demo:" in line for line in lines), lines
    assert "draining 0 requests …" in out and "done, 4 telemetry rows written" in out
    assert SECRET_WORDS not in out
    # Every line after the first screen has one shape: time, level, message.
    tail = out[out.index("Ctrl-C drains and stops") :].splitlines()[1:]
    assert tail and all(line[:9].count(":") == 2 and line.split()[1] in ("info", "warning", "error") for line in tail), tail


async def test_json_log_format_and_quiet(tmp_path):
    out = await _serve_and_stop(tmp_path, "--log-format", "json")
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    start = records[0]
    assert start["event"] == "start" and start["pipeline"] == "demo" and start["routes"]
    requests = [r for r in records if r.get("event") == "request"]
    assert len(requests) == 4
    assert {"client", "protocol", "model", "route", "status", "ms", "tokens_in", "tokens_upstream", "cache",
            "tier"} <= set(requests[0])
    assert requests[0]["client"] == "claude-code" and requests[0]["tokens_in"] > 0
    assert SECRET_WORDS not in out
    (tmp_path / "q").mkdir()
    quiet = await _serve_and_stop(tmp_path / "q", "--quiet")
    assert " req_" not in quiet and "pipeline 'demo'" in quiet


def test_busy_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = _lynkr("run", str(DEMO), "--port", str(port), "--no-reload",
                     env={"LYNKR_STATE_DIR": str(tmp_path), "LYNKR_TELEMETRY": str(tmp_path / "t.duckdb")})
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == (f"✗ cannot listen on 127.0.0.1:{port}: the port is in use "
                                                   "(another lynkr?); pass --port N or stop the other server")
    assert "Traceback" not in res.stderr


def test_directory_and_unusable_state_folder_are_one_line(tmp_path):
    # The shipped pipelines are alternatives, each with its own server: block: served as a folder
    # they conflict, said in one line naming both files (docs/teams.md, a pipeline per project).
    res = _lynkr("run", str(ROOT / "pipelines"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    line = res.stderr.strip()
    assert "\n" not in line and line.startswith(f"✗ {ROOT / 'pipelines'}/") and "when a folder is served" in line, line
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = _lynkr("run", str(DEMO), "--port", str(free_port()), "--no-reload",
                 env={"LYNKR_STATE_DIR": str(blocker / "state"), "LYNKR_TELEMETRY": str(blocker / "t.duckdb")})
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr == f"✗ state_dir: {blocker}/state: cannot use {blocker}/state: Not a directory\n"


def test_validate_reports_every_error_sorted_by_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""version: 1
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:9"}
stages:
  - {id: a, uses: exact_cach}
  - {id: b, uses: provider_call, with: {too: "up:*"}}
  - {id: c, uses: score, needs: [nope]}
telemetry: {path: 5}
""")
    res = _lynkr("validate", str(bad))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert [line.split(":")[1] for line in lines] == ["5", "6", "7", "8"], lines
    assert all(line.startswith(f"✗ {bad}:") for line in lines)
    assert "did you mean 'exact_cache'" in lines[0] and "unknown option 'too'" in lines[1]
    assert "needs unknown stage 'nope'" in lines[2] and "telemetry.path" in lines[3]


def test_validate_reports_every_build_error_too(tmp_path):
    """Errors found while building providers and stages (a missing key, an unknown provider in an
    option) are all reported as well, not only the first."""
    bad = tmp_path / "build.yaml"
    bad.write_text("""version: 1
providers:
  router: {kind: openai, base_url: "https://openrouter.ai/api/v1", env_vars: {OPENROUTER_API_KEY: api_key}}
stages:
  - {id: route, uses: tier_route, with: {default: "nowhere:model-a"}}
  - {id: call, uses: provider_call, with: {to: "router:gpt-4o"}}
  - {id: backup, uses: fallback, with: {to: "elsewhere:model-b"}}
""")
    res = _lynkr("validate", str(bad))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 3 and [line.split(":")[1] for line in lines] == ["3", "5", "7"], lines
    assert "set OPENROUTER_API_KEY" in lines[0] and "unknown provider 'nowhere'" in lines[1]
    assert "unknown provider 'elsewhere'" in lines[2]


def test_a_skip_fails_under_ci_and_says_why_otherwise(tmp_path):
    """The README's test command prints skip reasons (-rs); CI=true turns a skip into a failure."""
    (tmp_path / "test_needs_thing.py").write_text(
        "import pytest\n\n@pytest.mark.skipif(True, reason='the thing is not installed')\ndef test_thing():\n    pass\n")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"),
           "--rootdir", str(tmp_path), "-p", "tests.conftest", str(tmp_path / "test_needs_thing.py")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    local = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**env, "CI": ""}, timeout=120)
    assert local.returncode == 0 and "SKIPPED [1]" in local.stdout and "the thing is not installed" in local.stdout
    ci = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**env, "CI": "true"}, timeout=120)
    assert ci.returncode == 1 and "prerequisite of this test is missing" in ci.stdout
    assert "the thing is not installed" in ci.stdout
