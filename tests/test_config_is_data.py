"""A pipeline file is data: rendering or validating one never runs code it names.

Templates render in jinja's sandbox with only the documented filters and no globals; a stage file
(`uses: ./x.py:Class`) must be inside the pipeline's folder; `lynkr validate` imports no stage file
unless `--load-stages` says so.
"""
import os
import subprocess
import sys

import pytest

from lynkr.config import load_config
from lynkr.errors import ConfigError
from tests.conftest import ROOT

ESCAPES = [
    "{{ cycler.__init__.__globals__.os.popen('touch %(marker)s').read() }}",
    "n={{ ''.__class__.__mro__[1].__subclasses__() | length }}",
    "n={{ env.__class__.__mro__ | length }}",
    "{{ joiner.__init__.__globals__.os.system('touch %(marker)s') }}",
    "n={{ namespace.__init__.__globals__ | length }}",
    "n={{ lipsum.__globals__ | length }}",
    "n={{ range(10**9) | list | length }}",
]


def _pipeline(description: str) -> str:
    return f"""version: 1
description: "{description}"
providers:
  up: {{kind: anthropic, base_url: "http://127.0.0.1:1"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:m"}}}}
"""


@pytest.mark.parametrize("template", ESCAPES)
def test_templates_cannot_reach_python(tmp_path, template):
    """A template that walks to Python internals or calls a global is a config error naming the
    file, and runs nothing (the marker file a shell command would create never appears)."""
    marker = tmp_path / "pwned"
    p = tmp_path / "p.yaml"
    p.write_text(_pipeline(template % {"marker": marker}))
    with pytest.raises(ConfigError) as e:
        load_config(p, {})
    assert str(p) in str(e.value)
    assert not marker.exists()


def test_documented_template_vocabulary_still_renders(tmp_path):
    """env, vars, `default`, `lower`, `int`, `bool` and `replace` keep working."""
    p = tmp_path / "p.yaml"
    p.write_text("""version: 1
vars: {port: "{{ env.PORT | default('9') | int }}"}
server: {port: "{{ vars.port }}", host: "{{ env.HOST | default('LOCALHOST') | lower | replace('l', 'l') }}"}
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:1", enabled: "{{ env.ON | default('yes') | bool }}"}
stages:
  - {id: call, uses: provider_call, if: "model is defined and model.startswith('claude')", with: {to: "up:m"}}
""")
    cfg = load_config(p, {"PORT": "8088"})
    assert cfg.data["server"] == {"port": 8088, "host": "localhost"}


def test_if_expression_is_sandboxed():
    """`if:` expressions are compiled in the same sandbox: reaching Python internals raises."""
    from jinja2.exceptions import SecurityError, TemplateRuntimeError

    from lynkr.engine.plan import compile_condition

    cond = compile_condition("model.__class__.__mro__[1].__subclasses__()")
    with pytest.raises(SecurityError):
        cond(model="x")
    with pytest.raises(TemplateRuntimeError):
        compile_condition("cycler.__init__.__globals__.os")()


STAGE = """from lynkr.stage import Stage
open(%(marker)r, "w").write("imported")
class S(Stage):
    name = "s"
    options_schema = {"type": "object"}
    async def run(self, x):
        pass
"""


def _with_stage(uses: str) -> str:
    return f"""version: 1
providers:
  up: {{kind: anthropic, base_url: "http://127.0.0.1:1"}}
stages:
  - {{id: mine, uses: "{uses}"}}
  - {{id: call, uses: provider_call, with: {{to: "up:m"}}}}
"""


def test_stage_file_outside_the_pipeline_folder_is_refused(tmp_path, monkeypatch):
    """`uses: ../x.py:S` (or an absolute path elsewhere) is a config error and the file is not
    imported; a folder listed in LYNKR_STAGE_DIRS is the explicit way to allow one."""
    monkeypatch.delenv("LYNKR_STAGE_DIRS", raising=False)
    marker = tmp_path / "imported"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.py").write_text(STAGE % {"marker": str(marker)})
    folder = tmp_path / "pipes"
    folder.mkdir()
    for uses in ("../outside/x.py:S", f"{outside}/x.py:S"):
        p = folder / "p.yaml"
        p.write_text(_with_stage(uses))
        with pytest.raises(ConfigError) as e:
            load_config(p, {})
        assert "outside the pipeline's folder" in str(e.value) and e.value.path == ("stages", 0, "uses")
        assert not marker.exists()
    monkeypatch.setenv("LYNKR_STAGE_DIRS", str(outside))
    load_config(p, {})
    assert marker.exists()


def test_validate_does_not_import_stage_files_unless_asked(tmp_path):
    """`lynkr validate` checks a pipeline with a stage file without running the file's code;
    `--load-stages` imports it."""
    marker = tmp_path / "imported"
    (tmp_path / "x.py").write_text(STAGE % {"marker": str(marker)})
    (tmp_path / "p.yaml").write_text(_with_stage("./x.py:S"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "lynkr.cli", "validate", *a, "p.yaml"], cwd=tmp_path,
                                    capture_output=True, text=True,
                                    env={**os.environ, "LYNKR_DB_SERVICE": "off", "PYTHONPATH": str(ROOT)})
    res = run()
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    res = run("--load-stages")
    assert res.returncode == 0, res.stderr
    assert marker.read_text() == "imported"
