import contextlib
import os
import socket
import sys
from pathlib import Path

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

# Every stage that declares it edits the request copy-on-write is checked for it after each run,
# here and in the servers the tests start (lynkr.body.CHECK_EDITS): a false declaration fails loudly.
os.environ.setdefault("LYNKR_CHECK_EDITS", "1")

# Offline data (tokenizer, embedding model) when ../shared is beside the checkout.
if SHARED.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))
    os.environ.setdefault("LYNKR_EMBED_MODEL_PATH", str(SHARED / "models" / "all-MiniLM-L6-v2-onnx"))
    os.environ.setdefault("LYNKR_FIXTURES", str(SHARED / "fixtures"))
    os.environ.setdefault("LYNKR_EVAL", str(SHARED / "eval"))

# Pipelines written to tmp folders use the test stages in tests/helpers by absolute path: the
# operator's explicit allowance (a stage file is otherwise confined to its pipeline's folder).
os.environ.setdefault("LYNKR_STAGE_DIRS", str(ROOT / "tests" / "helpers"))

FIXTURES = Path(os.environ.get("LYNKR_FIXTURES", SHARED / "fixtures"))
EVAL = Path(os.environ.get("LYNKR_EVAL", SHARED / "eval"))


# Under CI=true a test that would skip for a missing prerequisite (a CLI, Chromium, the shared
# fixtures, the embedding model) fails instead, with the skip's reason: a green CI run then means
# every end-to-end test ran. Locally the skip stays a skip, and `-rs` (pyproject addopts) prints why.
ON_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if ON_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: a prerequisite of this test is missing (it would have skipped): {reason}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_app(app: web.Application, port: int | None = None):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = port or free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def serving(up):
    """A test upstream (anything with `.app()`) served on a free port, its URL in `up.url`."""
    runner, up.url = await start_app(up.app())
    try:
        yield up
    finally:
        await runner.cleanup()


@pytest.fixture
async def anthropic_upstream():
    from tests.helpers.anthropic_upstream import AnthropicUpstream

    async with serving(AnthropicUpstream()) as up:
        yield up


@pytest.fixture
def write_pipeline(tmp_path):
    def write(text: str, name: str = "pipeline.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p
    return write


@pytest.fixture
async def lynkr(tmp_path):
    """Start a Lynkr server for a pipeline file; yields a starter returning (engine, base_url)."""
    from lynkr.engine.runtime import Engine
    from lynkr.server.app import create_app

    runners = []

    async def start(pipeline_path, *, watch: bool = False, telemetry_path: str | None = None):
        engine = Engine(str(pipeline_path), watch=watch,
                        telemetry_path=telemetry_path or str(tmp_path / "telemetry.duckdb"))
        await engine.start()
        app = create_app(engine, manage_engine=False)
        runner, url = await start_app(app)
        runners.append((runner, engine))
        return engine, url

    yield start
    for runner, engine in runners:
        await runner.cleanup()
        await engine.stop()
