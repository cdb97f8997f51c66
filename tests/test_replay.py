"""`lynkr replay`: recorded sessions through one pipeline or two, upstream stubbed."""
import json

import pytest

from lynkr.cli import main
from tests.conftest import FIXTURES, ROOT
from tests.test_prefix_stability import BAD_STAGE, growing_session, write_session

PLAIN = """
version: 1
name: plain
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:9"}
stages:
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="needs ../shared/fixtures")


def test_replay_prints_per_request_and_total(capsys):
    assert main(["replay", str(FIXTURES), "--pipeline", str(ROOT / "pipelines" / "default.yaml")]) == 0
    out = capsys.readouterr().out
    assert "claude-code/fix-negative-stock" in out and "codex/list-files" in out
    assert "req_004.json" in out and "tools:+" in out and "json:+" in out
    total = [line for line in out.splitlines() if line.startswith("total A:")][0]
    assert "7 requests" in total and "prefix violations: 0" in total


def test_replay_against_shows_the_difference(tmp_path, capsys):
    plain = tmp_path / "plain.yaml"
    plain.write_text(PLAIN)
    code = main(["replay", str(FIXTURES), "--pipeline", str(plain), "--against",
                 str(ROOT / "pipelines" / "default.yaml"), "--json"])
    assert code == 0
    rep = json.loads(capsys.readouterr().out)
    a, b = rep["a"]["total"], rep["b"]["total"]
    assert a["client_tokens"] == b["client_tokens"] == a["upstream_tokens"]
    assert b["upstream_tokens"] < a["upstream_tokens"]
    assert set(b["stages"]) == {"tools", "json"}
    main(["replay", str(FIXTURES), "--pipeline", str(plain), "--against", str(ROOT / "pipelines" / "default.yaml")])
    assert "B − A:" in capsys.readouterr().out


def test_strict_fails_on_violations(tmp_path, capsys):
    write_session(tmp_path / "sess", growing_session(3))
    (tmp_path / "churn.py").write_text(BAD_STAGE)
    p = tmp_path / "p.yaml"
    p.write_text(PLAIN.replace("stages:\n", "stages:\n  - {id: churn, uses: ./churn.py:Churn}\n"))
    assert main(["replay", str(tmp_path / "sess"), "--pipeline", str(p), "--strict"]) == 2
    assert "message 0" in capsys.readouterr().out


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope"), "--pipeline", str(ROOT / "pipelines" / "default.yaml")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text(PLAIN.replace("provider_call", "provider_cal"))
    assert main(["replay", str(FIXTURES), "--pipeline", str(broken)]) == 1
    assert "provider_call" in capsys.readouterr().err           # did you mean
