"""Provider entries are checked against their kind's options schema at load time, like stage options:
a typo is one error naming file, line and YAML path, with "did you mean"; `lynkr providers` prints the
reference and the committed JSON Schema covers every kind."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lynkr.config import load_config
from lynkr.config.registry import PROVIDER_KINDS
from lynkr.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _pipeline(provider_yaml: str) -> str:
    return ("version: 1\nproviders:\n  up:\n" + provider_yaml +
            "stages:\n  - {id: call, uses: provider_call, with: {to: 'up:m'}}\n")


def _error(write_pipeline, provider_yaml: str) -> tuple[str, str]:
    path = write_pipeline(_pipeline(provider_yaml))
    with pytest.raises(ConfigError) as e:
        load_config(path, {})
    return path, str(e.value)


def test_a_timeout_typo_names_the_line_and_the_option_meant(write_pipeline):
    path, msg = _error(write_pipeline, "    kind: anthropic\n    base_url: http://127.0.0.1:9\n"
                                       "    timeouts: {frist_byte: 5}\n")
    assert msg.startswith(f"{path}:6: providers.up.timeouts.frist_byte: unknown option 'frist_byte'")
    assert "did you mean 'first_byte'?" in msg


def test_a_top_level_typo_is_caught_for_every_kind(write_pipeline):
    for kind in PROVIDER_KINDS:
        _path, msg = _error(write_pipeline, f"    kind: {kind}\n    bse_url: http://127.0.0.1:9\n")
        assert "providers.up.bse_url: unknown option 'bse_url'" in msg and "did you mean 'base_url'?" in msg, kind


def test_an_option_of_another_kind_is_refused(write_pipeline):
    """num_ctx means something to Ollama only: on an OpenAI provider it is a mistake, not a no-op."""
    _path, msg = _error(write_pipeline, "    kind: openai\n    base_url: http://127.0.0.1:9\n    num_ctx: 8192\n")
    assert "providers.up.num_ctx: unknown option 'num_ctx'" in msg
    load_config(_write(write_pipeline, "    kind: ollama\n    base_url: http://127.0.0.1:9\n    num_ctx: 8192\n"), {})


def test_a_wrong_type_names_the_option(write_pipeline):
    _path, msg = _error(write_pipeline, "    kind: ollama\n    base_url: http://x\n    retry: {attempts: 0}\n")
    assert "providers.up.retry.attempts" in msg and "minimum" in msg


def test_an_unknown_kind_suggests_the_closest(write_pipeline):
    _path, msg = _error(write_pipeline, "    kind: antropic\n    base_url: http://x\n")
    assert "providers.up.kind" in msg and "did you mean 'anthropic'?" in msg


def test_every_documented_option_loads(write_pipeline):
    """A provider entry using the options each kind documents is accepted."""
    load_config(_write(write_pipeline, """    kind: anthropic
    base_url: http://127.0.0.1:9
    api_key: k
    auth: bearer
    version: "2023-06-01"
    strip_billing: false
    forward_client_auth: false
    timeouts: {connect: 2, read: 30, first_byte: 5}
    retry: {attempts: 3, base_s: 0.1, max_s: 2, max_retry_after_s: 10}
    breaker: {threshold: 3, window_s: 30, cooldown_s: 10}
    max_connections: 16
    max_output: {m: 4096}
    env_vars: {UP_KEY: api_key}
"""), {})


def _write(write_pipeline, provider_yaml: str) -> str:
    return write_pipeline(_pipeline(provider_yaml))


def test_lynkr_providers_prints_each_kind_with_its_options():
    out = subprocess.run([sys.executable, "-m", "lynkr.cli", "providers"], capture_output=True, text=True,
                         check=True).stdout
    for kind in PROVIDER_KINDS:
        assert f"\n{kind}  [" in out
    assert "first_byte: number = 120" in out and "num_ctx: integer = 65536" in out
    assert "api_version: string = \"2024-10-21\"" in out


def test_the_committed_schema_checks_each_kinds_options():
    schema = json.loads((ROOT / "schemas/pipeline.schema.json").read_text())
    entry = schema["properties"]["providers"]["additionalProperties"]
    kinds = {rule["if"]["properties"]["kind"]["const"]: rule["then"] for rule in entry["allOf"]}
    assert set(kinds) == set(PROVIDER_KINDS)
    assert all(then["additionalProperties"] is False for then in kinds.values())
    assert "first_byte" in kinds["bedrock"]["properties"]["timeouts"]["properties"]
