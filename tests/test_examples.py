"""examples/replay-claude-code/run.sh, as its README says to run it: the recorded Claude Code
session replayed with the real CLI through Lynkr against the demo provider, in one command."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.helpers.wire_cli import claude_env, cli

ROOT = Path(__file__).resolve().parent.parent
CLAUDE = cli("claude")


@pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed (run .ci/setup.d/10-clis.sh)")
@pytest.mark.skipif(not (FIXTURES / "claude-code" / "fix-negative-stock").is_dir(), reason="needs ../shared/fixtures")
def test_replay_claude_code_example(tmp_path):
    env = {**claude_env(tmp_path / "home", "unused"), "CLAUDE": CLAUDE, "LYNKR": f"{sys.executable} -m lynkr.cli",
           "PYTHON": sys.executable, "PYTHONPATH": str(ROOT), "LYNKR_FIXTURES": str(FIXTURES), "TMPDIR": str(tmp_path)}
    env.pop("ANTHROPIC_BASE_URL")
    res = subprocess.run(["bash", str(ROOT / "examples/replay-claude-code/run.sh")], capture_output=True, text=True,
                         env=env, timeout=300)
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-3000:]
    assert "refuse to remove more than is in stock" in out                    # the recorded final answer
    assert '+            raise ValueError(f"cannot remove {qty} of {sku}: only {current} in stock")' in out
    assert out.count(" req_") >= 5 and "claude-code anthropic" in out          # one log line per agent turn
    assert "strip_tools" in out and "TOTAL" in out                             # lynkr report savings
