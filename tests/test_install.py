"""Lynkr installed like a tool, then the README's quickstart as a newcomer runs it.

The wheel is built from a copy of the checkout (`python -m build`) and installed into a fresh
venv; the venv sees this interpreter's installed dependencies (a .pth line, so nothing is
downloaded), but `lynkr` itself comes from the wheel: its pipelines, schemas, reports and
dashboard files must be inside it. From that venv: `lynkr --version`, `lynkr validate`,
`lynkr demo --check`, then `lynkr demo` with the real Claude Code CLI through it to a completed
tool turn, and `lynkr report savings` showing the rows."""
import asyncio
import os
import shutil
import signal
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import free_port
from tests.helpers.serve import wait_ready
from tests.helpers.wire_cli import claude_env, cli, run

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = cli("claude")
_SKIP = (".git", ".tools", "node_modules", "__pycache__", "build", "dist", "*.egg-info", ".lynkr", ".pytest_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the built wheel installed; returns its bin/ folder."""
    pytest.importorskip("build", reason="the `build` package (pip install -e '.[test]')")
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*_SKIP))
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(base / "dist"), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheel = next((base / "dist").glob("lynkr-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("lynkr/pipelines/demo.yaml", "lynkr/pipelines/default.yaml", "lynkr/schemas/pipeline.schema.json",
                   "lynkr/telemetry/reports/savings.sql", "lynkr/server/static/dashboard.js", "lynkr/data/models.json",
                   "lynkr/stages/strip_tools.py"):
        assert needed in names, f"{needed} is not in {wheel.name}"
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # This interpreter's dependencies, as a plain path entry: its .pth files (the editable lynkr) are not read.
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "deps.pth").write_text("\n".join(deps) + "\n")
    pip = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    where = subprocess.run([str(py), "-c", "import lynkr; print(lynkr.__file__)"], capture_output=True, text=True,
                           cwd=base, check=True).stdout.strip()
    assert where.startswith(purelib), f"lynkr imported from {where}, not from the wheel"
    return venv / "bin"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LYNKR_TELEMETRY", "LYNKR_STATE_DIR")}
    return {**env, **extra}


def test_installed_wheel_validates_and_checks_the_demo(installed, tmp_path):
    lynkr = str(installed / "lynkr")
    version = subprocess.run([lynkr, "--version"], capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert version.returncode == 0 and version.stdout.startswith("lynkr 0."), version.stdout + version.stderr
    valid = subprocess.run([lynkr, "validate", "demo", "default"], capture_output=True, text=True, cwd=tmp_path,
                           env=_env(), timeout=120)
    assert valid.returncode == 0, valid.stderr
    assert "✓ demo: pipeline 'demo'" in valid.stdout and "✓ default: pipeline 'default'" in valid.stdout
    check = subprocess.run([lynkr, "demo", "--check"], capture_output=True, text=True, cwd=tmp_path, env=_env(),
                           timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("✓") >= 9 and "✗" not in check.stdout


@pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (run .ci/setup.d/10-clis.sh)")
async def test_readme_quickstart_claude_code_tool_turn_then_savings_report(installed, tmp_path):
    """`lynkr demo`, then Claude Code with --allowedTools "Bash Read Edit" completes a tool turn
    (the demo calls Bash, Claude Code runs it, the demo answers with what it printed), then
    `lynkr report savings` and the dashboard show the rows."""
    here = tmp_path / "here"
    (here / "project").mkdir(parents=True)
    (here / "project" / "notes.txt").write_text("hello\n")
    (here / "project" / "app.py").write_text("print('hi')\n")
    port = free_port()
    log = open(tmp_path / "lynkr.log", "wb")
    env = _env(LYNKR_ADMIN_TOKEN="quickstart-token")
    proc = subprocess.Popen([str(installed / "lynkr"), "demo", "--port", str(port)], cwd=here, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, timeout=60)
        code, out, err = await run([CLAUDE, "-p", "list the files here", "--allowedTools", "Bash Read Edit",
                                    "--output-format", "text"], claude_env(tmp_path / "home", url), cwd=here / "project")
        served = (tmp_path / "lynkr.log").read_text()
        diag = f"exit {code}\nstdout:\n{out[-2000:]}\nstderr:\n{err[-2000:]}\nlynkr:\n{served[-4000:]}"
        assert code == 0, diag
        assert "Bash returned" in out and "notes.txt" in out and "app.py" in out, diag
        async with aiohttp.ClientSession() as s:
            await asyncio.sleep(2.5)          # telemetry is written every 2 s
            async with s.get(url + "/dashboard/api/report/savings",
                             headers={"authorization": "Bearer quickstart-token"}) as r:
                dash = await r.text()
        assert r.status == 200 and "strip_tools" in dash, dash
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    served = (tmp_path / "lynkr.log").read_text()
    assert "claude-code anthropic" in served and "→ demo:demo-" in served, served
    assert "done," in served and "telemetry rows written" in served
    report = subprocess.run([str(installed / "lynkr"), "report", "savings"], capture_output=True, text=True, cwd=here,
                            env=_env(), timeout=120)
    assert report.returncode == 0, report.stderr
    assert "strip_tools" in report.stdout and "TOTAL" in report.stdout, report.stdout
