"""pipelines/default.yaml reads like a workflow file, and a Node.js Lynkr `.env` still drives it:
its switches turn stages off (and `lynkr explain` says which), a variable with no meaning here is
named in one warning line, a bad value or a bad edit while serving is a clear error naming the line."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from lynkr.config.lynkr_env import IGNORED, IGNORED_PREFIXES, MAPPED, hot_reload, ignored, read_lynkr_env
from lynkr.engine.pipeline import load_pipeline
from lynkr.errors import ConfigError
from tests.conftest import ROOT

DEFAULT = ROOT / "pipelines" / "default.yaml"
FIXTURE = ROOT.parent / "shared/fixtures/claude-code/fix-negative-stock/req_004.json"


def _templates(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _templates(v)
    elif isinstance(value, list):
        for v in value:
            yield from _templates(v)
    elif isinstance(value, str) and ("{{" in value or "{%" in value):
        yield value


def test_default_yaml_keeps_its_shape():
    """At most 80 lines of at most 120 characters; every template is one short expression
    (no `{% %}` blocks, at most 40 characters inside the braces); no expression is written twice."""
    text = DEFAULT.read_text()
    lines = text.splitlines()
    assert len(lines) <= 80, f"{len(lines)} lines"
    long = [n for n, line in enumerate(lines, 1) if len(line) > 120]
    assert not long, f"lines over 120 characters: {long}"
    templates = list(_templates(yaml.safe_load(text)))
    assert templates, "the templates moved somewhere this test does not look"
    expressions = []
    for t in templates:
        m = re.fullmatch(r"\{\{\s*(.*?)\s*\}\}", t)
        assert m and "{{" not in m.group(1) and "{%" not in t, f"not one expression: {t!r}"
        assert len(m.group(1)) <= 40, f"too long: {t!r}"
        expressions.append(m.group(1))
    repeated = [e for e, n in Counter(expressions).items() if n > 1]
    assert not repeated, f"written more than once: {repeated}"


@pytest.mark.parametrize("env,off", [
    ({"SEMANTIC_CACHE_ENABLED": "false"}, {"cache": "SEMANTIC_CACHE_ENABLED=false"}),
    ({"PROMPT_CACHE_ENABLED": "0"}, {"exact": "PROMPT_CACHE_ENABLED=0"}),
    ({"TOON_ENABLED": "off"}, {"json": "TOON_ENABLED=off"}),
    ({"LYNKR_CACHE": "off"}, {"exact": "LYNKR_CACHE=off", "cache": "LYNKR_CACHE=off"}),
    ({"SEMANTIC_CACHE_ENABLED": "true", "PROMPT_CACHE_ENABLED": "yes", "TOON_ENABLED": "1"}, {}),
    ({"MEMORY_ENABLED": "false"}, {"memory": "MEMORY_ENABLED=false"}),
])
def test_lynkr_switches_turn_stages_off(env, off):
    """A switch set to false leaves its stage out: not built, not in the plan, and the plan
    says which variable turned it off (memory, opt-in, is on only with MEMORY_ENABLED=true)."""
    env = {"MEMORY_ENABLED": "true", **env}
    p = load_pipeline(DEFAULT, environ=env, dry_run=True)
    assert {sid: why for sid, (_uses, why) in p.plan.off.items()} == off
    assert not set(off) & set(p.stages)
    assert not set(off) & {s.id for s in p.plan.main}
    for sid, why in off.items():
        assert any(line.strip().startswith(f"off {sid} (") and why in line for line in p.plan.describe())


def test_lynkr_values_with_a_meaning_here():
    """HOST, OLLAMA_API_BASE, REQUEST_JSON_LIMIT, MODEL_PRICE_OVERRIDES, PROMPT_CACHE_TTL_MS and
    _MAX_ENTRIES, the load-shedding threshold, EMBEDDINGS_PROVIDER and the llama.cpp timeout reach
    the pipeline values they name."""
    env = {"HOST": "0.0.0.0", "PORT": "9001", "OLLAMA_API_BASE": "http://gpu:11434", "REQUEST_JSON_LIMIT": "1gb",
           "MODEL_PRICE_OVERRIDES": '{"my-model": {"input": 0.5, "output": 1.5}}', "PROMPT_CACHE_TTL_MS": "300000",
           "PROMPT_CACHE_MAX_ENTRIES": "100", "LOAD_SHEDDING_ACTIVE_REQUESTS_THRESHOLD": "64",
           "EMBEDDINGS_PROVIDER": "openrouter", "LLAMACPP_TIMEOUT_MS": "30000", "MODEL_PROVIDER": "ollama"}
    p = load_pipeline(DEFAULT, environ=env, dry_run=True)
    assert p.config["server"] == {"host": "0.0.0.0", "port": 9001, "max_body_bytes": 1024 ** 3,
                                  "shed": {"max_in_flight": 64}}
    assert p.config["stages"][0]["with"] == {"ttl": 300.0, "max_entries": 100}
    assert p.config["providers"]["openrouter"]["embeddings"] is True
    assert not any(c.get("embeddings") for n, c in p.config["providers"].items() if n != "openrouter")
    assert p.config["providers"]["ollama"]["base_url"] == "http://gpu:11434"
    assert p.config["providers"]["llamacpp"]["timeouts"] == {"read": 30.0, "first_byte": 30.0}
    assert p.config["models"] == {"my-model": {"input": 0.5, "output": 1.5}}
    assert p.stages["exact"].ttl == 300.0
    assert read_lynkr_env({"HOST": "0.0.0.0", "LYNKR_HOST": "10.0.0.1"}).host == "10.0.0.1"
    assert read_lynkr_env({"OLLAMA_ENDPOINT": "http://a:1", "OLLAMA_API_BASE": "http://b:2"}).providers["ollama"][
        "base_url"] == "http://a:1"
    assert hot_reload({"HOT_RELOAD_ENABLED": "false"}) is False and hot_reload({}) is True


@pytest.mark.parametrize("env,variable", [
    ({"PORT": "eighty"}, "PORT"),
    ({"REQUEST_JSON_LIMIT": "lots"}, "REQUEST_JSON_LIMIT"),
    ({"MODEL_PRICE_OVERRIDES": "{not json"}, "MODEL_PRICE_OVERRIDES"),
])
def test_a_lynkr_value_that_means_nothing_is_a_load_error_naming_it(env, variable):
    with pytest.raises(ConfigError) as e:
        load_pipeline(DEFAULT, environ=env, dry_run=True)
    assert variable in str(e.value) and re.search(r"default\.yaml:\d+", str(e.value))


def test_unused_node_variables_are_named_not_dropped():
    env = {"MEMORY_INCLUDE_GLOBAL": "true", "NODE_ENV": "development", "HEADROOM_MODE": "optimize", "PATH": "/bin",
           "OLLAMA_MODEL": "x", "SEMANTIC_CACHE_ENABLED": "true", "MEMORY_ENABLED": "true"}
    assert ignored(env) == ["HEADROOM_MODE", "MEMORY_INCLUDE_GLOBAL", "NODE_ENV"]
    assert ignored({"EMBEDDINGS_PROVIDER": "ollama"}) == ["EMBEDDINGS_PROVIDER"]
    assert ignored({"EMBEDDINGS_PROVIDER": "openai"}) == []


def test_lynkr_run_warns_in_one_line_and_on_a_misspelt_dotenv_name(tmp_path):
    """`lynkr run` names the Node.js variables it ignores in one line, and a `.env` name that is
    no variable with the one it probably meant; then it goes on (here to a config error)."""
    (tmp_path / "p.yaml").write_text("version: 1\nstages: []\nbroken: true\n")
    (tmp_path / ".env").write_text("MODEL_PROVIDER=ollama\nOLAMA_MODEL=qwen\nMEMORY_INCLUDE_GLOBAL=true\nNODE_ENV=dev\n")
    res = subprocess.run([sys.executable, "-m", "lynkr.cli", "run", "p.yaml", "--port", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in __import__("os").environ.items() if k not in ("MEMORY_INCLUDE_GLOBAL",)})
    warnings = [line for line in res.stderr.splitlines() if " warning " in line]
    assert len(warnings) == 2, res.stderr
    assert "MEMORY_INCLUDE_GLOBAL, NODE_ENV" in warnings[0] and "no meaning here" in warnings[0]
    assert "OLAMA_MODEL is not a Lynkr variable (did you mean 'OLLAMA_MODEL'?)" in warnings[1]
    assert "unknown option 'broken'" in res.stderr and "Traceback" not in res.stderr


def test_explain_says_which_switch_turned_which_stage_off():
    if not FIXTURE.exists():
        pytest.fail("shared fixtures not present")
    import os
    res = subprocess.run([sys.executable, "-m", "lynkr.cli", "explain", str(DEFAULT), str(FIXTURE)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SEMANTIC_CACHE_ENABLED": "false", "TOON_ENABLED": "no"})
    assert res.returncode == 0, res.stderr
    assert "off cache (semantic_cache)  [SEMANTIC_CACHE_ENABLED=false]" in res.stdout
    assert re.search(r"json\s+toon\s+off\s+turned off by TOON_ENABLED=no", res.stdout)


async def test_a_bad_edit_while_serving_keeps_the_last_good_pipeline(tmp_path):
    """default.yaml edited into an invalid state: the reload fails with file:line and a hint, and
    the running pipeline keeps serving unchanged."""
    from lynkr.engine.runtime import Engine

    path = tmp_path / "default.yaml"
    shutil.copy(DEFAULT, path)
    env = {"LYNKR_STATE_DIR": str(tmp_path / "state"), "SEMANTIC_CACHE_ENABLED": "false"}
    engine = Engine(path, environ=env, watch=False, telemetry_path=str(tmp_path / "t.duckdb"))
    await engine.start()
    try:
        good = engine.current
        text = path.read_text()
        line = text.splitlines().index("    uses: strip_tools") + 1
        path.write_text(text.replace("uses: strip_tools", "uses: strip_tool"))
        assert await engine.reload() is False
        assert f"default.yaml:{line}" in engine.last_error and "did you mean 'strip_tools'" in engine.last_error
        assert engine.current is good and not good.closed
        path.write_text(text)
        assert await engine.reload() is True and engine.last_error is None
    finally:
        await engine.stop()


def test_memory_variables_map_onto_the_memory_stage():
    """MEMORY_ENABLED=true turns the opt-in memory stage on; its limit, surprise threshold and TTL
    (milliseconds, as Node.js read it) become the stage's options; unset, the stage is off."""
    p = load_pipeline(DEFAULT, environ={"MEMORY_ENABLED": "true", "MEMORY_RETRIEVAL_LIMIT": "3",
                                        "MEMORY_SURPRISE_THRESHOLD": "0.5", "MEMORY_TTL": "86400000"}, dry_run=True)
    assert {k: p.stages["memory"].options[k] for k in ("retrieval_limit", "surprise_threshold", "ttl")} == \
        {"retrieval_limit": 3, "surprise_threshold": 0.5, "ttl": 86400}
    off = load_pipeline(DEFAULT, environ={}, dry_run=True)
    assert "memory" not in off.stages and "opt-in" in off.plan.off["memory"][1]
    with pytest.raises(ConfigError, match="MEMORY_SURPRISE_THRESHOLD"):
        load_pipeline(DEFAULT, environ={"MEMORY_SURPRISE_THRESHOLD": "high"}, dry_run=True)


def test_docs_table_names_every_variable():
    """docs/lynkr-env.md is the one table: every variable the mapping reads or ignores is in it,
    and it names no variable the mapping does not know."""
    doc = (ROOT / "docs" / "lynkr-env.md").read_text()
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", doc))
    assert MAPPED - named == set()
    assert IGNORED - named == set()
    assert {p + "*" for p in IGNORED_PREFIXES} <= set(re.findall(r"`([A-Z_]+\*)`", doc))
    assert {n for n in named - MAPPED - IGNORED if not n.startswith(IGNORED_PREFIXES)} == set()
