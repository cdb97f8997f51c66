"""Running the real Claude Code and Codex CLIs against a proxy in tests.

The CLIs come from `.ci/setup.d/10-clis.sh` (npm, into `.tools/`); without them the tests skip
with the reason. Each run gets a temporary HOME and has its non-essential traffic switched off,
so nothing leaves 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("LYNKR_TOOLS", ROOT / ".tools"))
FIXTURE = Path(os.environ.get("LYNKR_FIXTURES", ROOT.parent / "shared" / "fixtures")) / "claude-code" / "fix-negative-stock"
FIXTURE_ROOT = "/home/dev/inventory-app"

# The working folder of the recorded fix-negative-stock session; examples/replay-claude-code uses it too.
INVENTORY_APP = ROOT / "examples" / "replay-claude-code" / "inventory-app"


def cli(name: str) -> str | None:
    p = TOOLS / "node_modules" / ".bin" / name
    if p.exists():
        return str(p)
    return shutil.which(name) if os.environ.get("LYNKR_USE_PATH_CLIS") else None


def make_inventory_app(root: Path) -> Path:
    """A copy of the fix-negative-stock session's working folder."""
    app = root / "inventory-app"
    shutil.copytree(INVENTORY_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    return app


def base_env(home: Path) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "CLAUDE_", "CODEX_"))}
    env.update({
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_BUG_COMMAND": "1",
        "CI": "1", "TERM": "dumb",
    })
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    return env


def claude_env(home: Path, proxy_url: str) -> dict:
    env = base_env(home)
    env.update({"ANTHROPIC_BASE_URL": proxy_url, "ANTHROPIC_API_KEY": "dummy", "IS_SANDBOX": "1",
                "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS": "1", "CLAUDE_CODE_MAX_RETRIES": "1",
                "API_TIMEOUT_MS": "60000"})
    return env


def codex_env(home: Path, proxy_url: str) -> dict:
    env = base_env(home)
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(f'''
model = "gpt-5-codex"
model_provider = "lynkr"

[model_providers.lynkr]
name = "Lynkr"
base_url = "{proxy_url}/v1"
env_key = "LYNKR_TEST_KEY"
wire_api = "responses"
supports_websockets = false
request_max_retries = 0
stream_max_retries = 0
''')
    env.update({"CODEX_HOME": str(codex_home), "LYNKR_TEST_KEY": "dummy"})
    return env


async def run(argv: list[str], env: dict, cwd: Path, timeout: float = 180) -> tuple[int, str, str]:
    """Run a CLI without blocking the event loop that serves the proxy and the upstream."""
    proc = await asyncio.create_subprocess_exec(*argv, env=env, cwd=str(cwd), stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        return -9, out.decode(errors="replace"), err.decode(errors="replace") + "\n[timed out]"
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
