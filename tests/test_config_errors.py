"""Every load-time check gives one message naming file, line and YAML path."""
import subprocess
import sys
from pathlib import Path

import pytest

from lynkr.config import load_config
from lynkr.engine import build_pipeline
from lynkr.errors import ConfigError

HELPERS = Path(__file__).parent / "helpers" / "engine_stages.py"

GOOD = """\
version: 1
name: good
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:1"}
stages:
  - id: tag
    uses: %s:Tag
    with: {key: a, value: 1}
  - id: call
    uses: provider_call
    needs: [tag]
    with: {to: "up:m"}
""" % HELPERS


def load(write_pipeline, text, environ=None):
    path = write_pipeline(text)
    return path, load_config(path, environ or {})


def error_of(write_pipeline, text, environ=None) -> ConfigError:
    path = write_pipeline(text)
    with pytest.raises(ConfigError) as e:
        build_pipeline(load_config(path, environ or {}), dry_run=True)
    assert str(path) in str(e.value)
    return e.value


def test_good_file_loads(write_pipeline):
    _, cfg = load(write_pipeline, GOOD)
    assert cfg.name == "good" and len(cfg.hash) == 12
    p = build_pipeline(cfg, dry_run=True)
    assert [s.id for s in p.plan.main] == ["tag", "call"]


def test_yaml_syntax_error_names_line(write_pipeline):
    e = error_of(write_pipeline, "version: 1\nstages:\n  - {id: a, uses: [x\n  - id: b\n")
    assert e.line in (3, 4) and "YAML syntax error" in str(e)


def test_schema_violation_names_path_and_line(write_pipeline):
    text = GOOD.replace("with: {to: \"up:m\"}", "with: {too: \"up:m\"}")
    e = error_of(write_pipeline, text)
    assert e.path == ("stages", 1, "with", "too")
    assert e.line == 12
    assert "did you mean 'to'" in str(e)
    assert "stages[1].with.too" in str(e)


def test_wrong_type_in_top_level(write_pipeline):
    e = error_of(write_pipeline, GOOD.replace("version: 1\nname: good\n", "version: 1\nname: good\nserver: {port: high}\n"))
    assert e.path == ("server", "port") and e.line == 3


def test_unknown_top_level_key_suggests(write_pipeline):
    e = error_of(write_pipeline, GOOD + "telemetri: {path: x}\n")
    assert "unknown option 'telemetri'" in str(e) and "did you mean 'telemetry'" in str(e)


def test_cycle_is_printed(write_pipeline):
    text = f"""\
version: 1
stages:
  - {{id: a, uses: "{HELPERS}:Tag", with: {{key: k}}, needs: [b]}}
  - {{id: b, uses: "{HELPERS}:Tag", with: {{key: k}}, needs: [a]}}
"""
    e = error_of(write_pipeline, text)
    assert "cycle: a → b → a" in str(e) or "cycle: b → a → b" in str(e)
    assert e.line in (3, 4)


def test_unknown_stage_did_you_mean(write_pipeline):
    e = error_of(write_pipeline, GOOD.replace("uses: provider_call", "uses: provider_cal"))
    assert "unknown stage 'provider_cal'" in str(e) and "did you mean 'provider_call'" in str(e)
    assert e.path == ("stages", 1, "uses") and e.line == 10


def test_missing_needs_target(write_pipeline):
    e = error_of(write_pipeline, GOOD.replace("needs: [tag]", "needs: [tga]"))
    assert "needs unknown stage 'tga'" in str(e) and "did you mean 'tag'" in str(e)
    assert e.path == ("stages", 1, "needs", 0)


def test_missing_on_error_target(write_pipeline):
    e = error_of(write_pipeline, GOOD.replace("needs: [tag]", "needs: [tag]\n    on_error: backup"))
    assert "on_error names unknown stage 'backup'" in str(e)


def test_missing_env_var_is_named(write_pipeline):
    text = GOOD.replace('base_url: "http://127.0.0.1:1"', 'base_url: "{{ env.UPSTREAM_URL }}"')
    e = error_of(write_pipeline, text, environ={})
    assert "environment variable UPSTREAM_URL is not set" in str(e)
    assert e.path == ("providers", "up", "base_url") and e.line == 4


def test_env_default_and_value(write_pipeline):
    text = GOOD.replace('base_url: "http://127.0.0.1:1"', 'base_url: "{{ env.UPSTREAM_URL | default(\'http://d\') }}"')
    _, cfg = load(write_pipeline, text, {})
    assert cfg.data["providers"]["up"]["base_url"] == "http://d"
    _, cfg = load(write_pipeline, text, {"UPSTREAM_URL": "http://e"})
    assert cfg.data["providers"]["up"]["base_url"] == "http://e"


def test_bad_if_expression(write_pipeline):
    e = error_of(write_pipeline, GOOD.replace("needs: [tag]", "needs: [tag]\n    if: \"tier ==\""))
    assert "invalid if: expression" in str(e) and e.path == ("stages", 1, "if")


def test_duplicate_ids(write_pipeline):
    e = error_of(write_pipeline, GOOD.replace("id: call", "id: tag"))
    assert "duplicate stage id 'tag'" in str(e)


def test_tiers_unknown_provider_and_missing_tier(write_pipeline):
    tiers = "tiers:\n  SIMPLE: up:a\n  MEDIUM: up:b\n  COMPLEX: upp:c\n  REASONING: up:d\n"
    e = error_of(write_pipeline, GOOD + tiers)
    assert "unknown provider 'upp'" in str(e) and "did you mean 'up'" in str(e) and e.path == ("tiers", "COMPLEX")
    e = error_of(write_pipeline, GOOD + "tiers:\n  SIMPLE: up:a\n")
    assert "missing MEDIUM, COMPLEX, REASONING" in str(e)


def test_stage_option_target_unknown_provider(write_pipeline):
    e = error_of(write_pipeline, GOOD.replace('to: "up:m"', 'to: "nope:m"'))
    assert "unknown provider 'nope'" in str(e) and e.path == ("stages", 1, "with", "to")


def test_path_stage_that_does_not_exist(write_pipeline):
    e = error_of(write_pipeline, GOOD.replace(f"{HELPERS}:Tag", "./missing.py:Tag"))
    assert "cannot load stage ./missing.py:Tag" in str(e)


def test_validate_cli_exit_codes(write_pipeline, tmp_path):
    good = write_pipeline(GOOD, "good.yaml")
    bad = write_pipeline(GOOD.replace("uses: provider_call", "uses: provider_cal"), "bad.yaml")
    ok = subprocess.run([sys.executable, "-m", "lynkr.cli", "validate", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    res = subprocess.run([sys.executable, "-m", "lynkr.cli", "validate", str(good), str(bad)], capture_output=True, text=True)
    assert res.returncode == 1
    assert f"{bad}:10: stages[1].uses: unknown stage 'provider_cal'" in res.stderr
    assert "Traceback" not in res.stderr


def test_shipped_pipelines_validate():
    root = Path(__file__).resolve().parent.parent
    files = sorted(str(p) for p in (root / "pipelines").glob("*.yaml"))
    files += sorted(str(p) for p in (root / "examples").rglob("*.yaml") if "pipelines" in p.parts)
    # A fresh machine: no provider keys or Lynkr variables, only the offline model and tokenizer.
    import os
    keep = ("PATH", "HOME", "LYNKR_EMBED_MODEL_PATH", "TIKTOKEN_CACHE_DIR", "HF_HUB_OFFLINE")
    res = subprocess.run([sys.executable, "-m", "lynkr.cli", "validate", *files], capture_output=True, text=True,
                         env={k: os.environ[k] for k in keep if k in os.environ})
    assert res.returncode == 0, res.stderr


def test_vars_are_rendered_once_and_shared(write_pipeline):
    text = GOOD.replace("version: 1\n", "version: 1\nvars:\n  url: \"{{ env.UP | default('http://v') }}\"\n"
                        "  models: {fast: m1}\n", 1)
    text = text.replace('base_url: "http://127.0.0.1:1"', 'base_url: "{{ vars.url }}"')
    text = text.replace('to: "up:m"', 'to: "up:{{ vars.models.fast }}"')
    _, cfg = load(write_pipeline, text, {"UP": "http://from-env"})
    assert cfg.data["providers"]["up"]["base_url"] == "http://from-env"
    assert cfg.data["stages"][1]["with"]["to"] == "up:m1"
    e = error_of(write_pipeline, text.replace("vars.url", "vars.ulr"))
    assert "vars.ulr is not defined" in str(e) and "did you mean 'url'" in str(e)
    assert e.path == ("providers", "up", "base_url")
