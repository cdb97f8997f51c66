"""`lynkr explain`, `lynkr stages`, the committed schema, plugins by path and entry point, `.env`."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lynkr(*args, cwd=None, env=None):
    import os
    return subprocess.run([sys.executable, "-m", "lynkr.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_explain_shows_plan_stages_and_changes():
    res = lynkr("explain", str(ROOT / "examples/custom-stage/pipeline.yaml"), str(ROOT / "examples/request.json"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["plan"][0].startswith("1. redact")
    assert report["stages"][0]["detail"] == {"redacted": 1}
    assert report["request_changed"] is True
    assert report["response"] is None          # no upstream call in a dry run


def test_explain_redacts_secrets():
    res = lynkr("explain", str(ROOT / "examples/custom-stage/pipeline.yaml"), str(ROOT / "examples/request.json"),
                "--json", env={"ANTHROPIC_API_KEY": "sk-ant-very-secret"})
    assert res.returncode == 0, res.stderr
    assert "sk-ant-very-secret" not in res.stdout


def test_explain_reads_fixture_files():
    fixture = ROOT.parent / "shared/fixtures/claude-code/fix-negative-stock/req_004.json"
    if not fixture.exists():
        pytest.skip("shared fixtures not present")
    res = lynkr("explain", str(ROOT / "pipelines/passthrough.yaml"), str(fixture))
    assert res.returncode == 0, res.stderr
    assert "plan:" in res.stdout and "tokens: client sent" in res.stdout


def test_explain_against_a_stored_question_names_the_rule_and_tokens_that_refuse_it(tmp_path):
    """`--against` judges stored questions as the semantic cache would for this request: a
    rephrasing is served, a near miss is refused naming the guard's rule and the tokens that
    differ, an unrelated question stays under the threshold."""
    req = tmp_path / "q.json"
    req.write_text(json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 50,
                               "messages": [{"role": "user", "content": "How do I delete the last 3 commits in git?"}]}))
    res = lynkr("explain", str(ROOT / "pipelines/default.yaml"), str(req), "--json",
                "--against", "how can I remove the last three git commits",
                "--against", "How do I delete the last 2 commits in git?",
                "--against", "What is the capital of France?",
                env={"MODEL_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "x"})
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)["against"]
    assert got["question"] == "How do I delete the last 3 commits in git?"
    served, near, far = got["results"]
    assert served["verdict"] == "served" and served["reason"] is None
    assert near["verdict"] == "refused" and near["reason"].startswith("number:") and "3" in near["reason"] and "2" in near["reason"]
    assert far["verdict"] == "under_threshold" and far["similarity"] < far["threshold"]
    text = lynkr("explain", str(ROOT / "pipelines/default.yaml"), str(req), "--against", "How do I delete the last 2 commits in git?",
                 env={"MODEL_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "x"})
    assert "refused: number: 3" in text.stdout, text.stdout


def test_explain_bad_request_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    res = lynkr("explain", str(ROOT / "pipelines/passthrough.yaml"), str(bad))
    assert res.returncode == 1 and "Traceback" not in res.stderr


def test_stages_lists_options_and_defaults():
    res = lynkr("stages")
    assert res.returncode == 0
    assert "provider_call" in res.stdout and "fallback" in res.stdout
    assert "to:" in res.stdout


def test_committed_schema_is_current():
    res = lynkr("stages", "--schema")
    committed = (ROOT / "schemas/pipeline.schema.json").read_text()
    assert json.loads(res.stdout) == json.loads(committed), \
        "schemas/pipeline.schema.json is stale: run `lynkr stages --schema schemas/pipeline.schema.json`"


def test_stage_by_path_relative_to_pipeline(tmp_path):
    res = lynkr("validate", str(ROOT / "examples/custom-stage/pipeline.yaml"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_entry_point_stages_are_registered(monkeypatch):
    from importlib.metadata import EntryPoint

    from lynkr.config import registry

    ep = EntryPoint(name="redact", value="tests.helpers.plugin_stage:PluginStage", group="lynkr.stages")
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if group == "lynkr.stages" else [])
    registry.load_registry.cache_clear()
    try:
        found = registry.load_registry()
        assert "plugin_example" in found and "entry point redact" in found["plugin_example"].source
        monkeypatch.setenv("LYNKR_LOAD_PLUGINS", "something-else")
        registry.load_registry.cache_clear()
        assert "plugin_example" not in registry.load_registry()
    finally:
        registry.load_registry.cache_clear()


def test_run_loads_dotenv(tmp_path):
    """`lynkr run` reads ./.env; a missing variable is a clean error naming it."""
    (tmp_path / "p.yaml").write_text(
        'version: 1\nproviders:\n  up: {kind: anthropic, base_url: "{{ env.MY_UPSTREAM }}", api_key: k}\n'
        'stages:\n  - {id: call, uses: provider_call, with: {to: "up:*"}}\ntelemetry: {enabled: false}\n')
    res = lynkr("run", "p.yaml", "--port", "1", cwd=tmp_path)   # port 1: fails after loading, or config error
    assert "environment variable MY_UPSTREAM is not set" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / ".env").write_text("MY_UPSTREAM=http://127.0.0.1:9\n")
    res = lynkr("validate", "p.yaml", cwd=tmp_path, env={"MY_UPSTREAM": "http://x"})
    assert res.returncode == 0
    from lynkr.cli import _load_dotenv
    import os
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        os.environ.pop("MY_UPSTREAM", None)
        _load_dotenv()
        assert os.environ["MY_UPSTREAM"] == "http://127.0.0.1:9"
    finally:
        os.environ.pop("MY_UPSTREAM", None)
        os.chdir(old)
