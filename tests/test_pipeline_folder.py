"""One proxy serving a folder of pipelines (`lynkr run pipelines/`): a key's requests go to its
pipeline, `/p/NAME/…` picks one where the key allows it (every client protocol), each file reloads
on its own, and conflicts between files are load errors naming both files and lines."""
import asyncio
import contextlib
import hashlib

import aiohttp
import anthropic
import openai
import pytest

from lynkr.config.folder import load_front
from lynkr.errors import ConfigError
from tests.conftest import start_app
from tests.helpers.reliability_util import BODY

ALICE, BOB, CAROL = "folder-alice-0123456789", "folder-bob-0123456789ab", "folder-carol-0123456789"

FRONT = """
version: 1
name: main
server:
  port: 18081
  shed: {{enabled: false}}     # the SDKs share this test's event loop: their lag is not load
keys:
  alice: {{secret_sha256: "{alice}", pipeline: payments}}
  bob: {{secret: "{bob}"}}
  carol: {{secret: "{carol}", team: searchers, models: ["up:claude-search*"]}}
teams:
  searchers: {{pipeline: search}}
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
"""

PROJECT = """
version: 1
name: {name}
providers:
  up: {{kind: anthropic, base_url: "{url}"}}
stages:
  - {{id: call, uses: provider_call, with: {{to: "up:{model}"}}}}
"""


def write_folder(folder, url: str) -> dict:
    folder.mkdir(exist_ok=True)
    files = {"main": folder / "main.yaml", "payments": folder / "payments.yaml", "search": folder / "search.yaml"}
    files["main"].write_text(FRONT.format(alice=hashlib.sha256(ALICE.encode()).hexdigest(), bob=BOB, carol=CAROL, url=url))
    files["payments"].write_text(PROJECT.format(name="payments", url=url, model="claude-pay"))
    files["search"].write_text(PROJECT.format(name="search", url=url, model="claude-search"))
    return files


@contextlib.asynccontextmanager
async def folder_proxy(folder, tmp_path, watch: bool = False):
    from lynkr.engine.folder import engine_for
    from lynkr.server.app import create_app

    engine = engine_for(str(folder), watch=watch, telemetry_path=str(tmp_path / "telemetry.duckdb"))
    await engine.start()
    runner, url = await start_app(create_app(engine, manage_engine=False))
    try:
        yield engine, url
    finally:
        await runner.cleanup()
        await engine.stop()


async def test_keys_go_to_their_pipeline_and_pick_others_by_path_where_allowed(anthropic_upstream, tmp_path):
    """alice's requests go to `payments` (her key's pipeline), carol's to `search` (her team's), bob's
    (no pipeline) to the front one; bob picks `search` by /p/search/ in the Anthropic, OpenAI Chat
    and Responses protocols; alice may not (403), and an unknown name is a 404 with a suggestion."""
    write_folder(tmp_path / "pipelines", anthropic_upstream.url)
    async with folder_proxy(tmp_path / "pipelines", tmp_path) as (engine, url):
        assert sorted(engine.pipelines) == ["main", "payments", "search"] and engine.current.name == "main"
        for key, model in ((ALICE, "claude-pay"), (CAROL, "claude-search"), (BOB, "claude-x")):
            await anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0).messages.create(**BODY)
            assert anthropic_upstream.requests[-1]["model"] == model
        bob = anthropic.AsyncAnthropic(base_url=url + "/p/search", api_key=BOB, max_retries=0)
        await bob.messages.create(**BODY)
        assert anthropic_upstream.requests[-1]["model"] == "claude-search"
        oa = openai.AsyncOpenAI(base_url=url + "/p/search/v1", api_key=BOB, max_retries=0)
        await oa.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
        assert anthropic_upstream.requests[-1]["model"] == "claude-search"
        await oa.responses.create(model="gpt-x", input="hi")
        assert anthropic_upstream.requests[-1]["model"] == "claude-search"
        pay = openai.AsyncOpenAI(base_url=url + "/p/payments/v1", api_key=ALICE, max_retries=0)
        await pay.responses.create(model="gpt-x", input="hi")
        assert anthropic_upstream.requests[-1]["model"] == "claude-pay"
        seen = len(anthropic_upstream.requests)
        with pytest.raises(anthropic.PermissionDeniedError) as e:
            await anthropic.AsyncAnthropic(base_url=url + "/p/search", api_key=ALICE, max_retries=0).messages.create(**BODY)
        assert e.value.body["error"]["type"] == "permission_error"
        assert "key alice may use the pipeline payments, not 'search'" in e.value.message
        with pytest.raises(openai.PermissionDeniedError):
            await openai.AsyncOpenAI(base_url=url + "/p/search/v1", api_key=ALICE, max_retries=0).chat.completions.create(
                model="gpt-x", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(anthropic.NotFoundError) as e:
            await anthropic.AsyncAnthropic(base_url=url + "/p/serch", api_key=BOB, max_retries=0).messages.create(**BODY)
        assert "no pipeline named 'serch'" in e.value.message and "did you mean 'search'?" in e.value.message
        assert len(anthropic_upstream.requests) == seen, "refused requests never reach an upstream"
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/metrics") as r:
                metrics = await r.text()
            async with s.get(url + "/p/search/v1/models", headers={"authorization": f"Bearer {BOB}"}) as r:
                models = [m["id"] for m in (await r.json())["data"]]
            async with s.post(url + "/p/payments/v1/messages/count_tokens", json=BODY, headers={"x-api-key": ALICE}) as r:
                counted = await r.json()
        assert models == ["claude-search"] and counted["input_tokens"] > 0
        assert all(f'lynkr_pipeline_info{{pipeline="{n}",' in metrics for n in ("main", "payments", "search"))
    import duckdb
    con = duckdb.connect(str(tmp_path / "telemetry.duckdb"), read_only=True)
    rows = con.execute("SELECT pipeline, key, count(*) FROM requests WHERE status = 200 GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    con.close()
    assert rows == [("main", "bob", 1), ("payments", "alice", 2), ("search", "bob", 3), ("search", "carol", 1)]


async def test_each_file_reloads_on_its_own_and_a_bad_change_keeps_every_pipeline(anthropic_upstream, tmp_path):
    """Changing one file rebuilds that pipeline only; a change that conflicts with another file
    (a second `server:`) is refused with both files named, and every pipeline keeps serving."""
    files = write_folder(tmp_path / "pipelines", anthropic_upstream.url)
    async with folder_proxy(tmp_path / "pipelines", tmp_path) as (engine, url):
        before = dict(engine.pipelines)
        files["payments"].write_text(PROJECT.format(name="payments", url=anthropic_upstream.url, model="claude-pay-2"))
        assert await engine.reload({str(files["payments"])})
        assert engine.pipelines["payments"] is not before["payments"]
        assert engine.pipelines["search"] is before["search"] and engine.pipelines["main"] is before["main"]
        await anthropic.AsyncAnthropic(base_url=url, api_key=ALICE, max_retries=0).messages.create(**BODY)
        assert anthropic_upstream.requests[-1]["model"] == "claude-pay-2"

        files["search"].write_text(PROJECT.format(name="search", url=anthropic_upstream.url, model="claude-s")
                                   + "server: {port: 19000}\n")
        assert not await engine.reload({str(files["search"])})
        assert "search.yaml:8: server.port: set here and in" in engine.last_error
        assert "main.yaml:5; when a folder is served" in engine.last_error
        await anthropic.AsyncAnthropic(base_url=url, api_key=CAROL, max_retries=0).messages.create(**BODY)
        assert anthropic_upstream.requests[-1]["model"] == "claude-search"


async def test_the_watcher_reloads_only_the_file_that_changed_and_loads_a_new_one(anthropic_upstream, tmp_path):
    """With the folder watched, saving one file swaps in that pipeline alone; a file added to the
    folder is served under its name."""
    files = write_folder(tmp_path / "pipelines", anthropic_upstream.url)
    async with folder_proxy(tmp_path / "pipelines", tmp_path, watch=True) as (engine, url):
        before = dict(engine.pipelines)
        await asyncio.sleep(0.3)        # let the watcher start
        files["search"].write_text(PROJECT.format(name="search", url=anthropic_upstream.url, model="claude-search-2"))
        await wait_for(lambda: engine.pipelines["search"] is not before["search"])
        assert engine.pipelines["payments"] is before["payments"] and engine.pipelines["main"] is before["main"]
        (tmp_path / "pipelines" / "docs.yaml").write_text(PROJECT.format(name="docs", url=anthropic_upstream.url,
                                                                          model="claude-docs"))
        await wait_for(lambda: "docs" in engine.pipelines)
        await anthropic.AsyncAnthropic(base_url=url + "/p/docs", api_key=BOB, max_retries=0).messages.create(**BODY)
        assert anthropic_upstream.requests[-1]["model"] == "claude-docs"
        await anthropic.AsyncAnthropic(base_url=url, api_key=CAROL, max_retries=0).messages.create(**BODY)
        assert anthropic_upstream.requests[-1]["model"] == "claude-search-2"


async def wait_for(cond, timeout=20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_validate_and_keys_check_read_a_folder_as_run_serves_it(tmp_path, capsys):
    """`lynkr validate FOLDER` checks each file and then the folder as one (a key naming a pipeline
    that is not there fails it); `lynkr keys check FOLDER` lists each key with its pipeline."""
    from lynkr.cli import main

    folder = tmp_path / "pipelines"
    files = write_folder(folder, "http://127.0.0.1:9")
    assert main(["validate", str(folder)]) == 0
    assert f"✓ {folder}: 3 pipelines served together" in capsys.readouterr().out
    assert main(["keys", "check", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "alice: no limits; all models; pipeline payments;" in out
    assert "carol team searchers: no limits; up:claude-search*; pipeline search;" in out
    files["main"].write_text(files["main"].read_text().replace("pipeline: payments", "pipeline: paymnts"))
    assert main(["validate", str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"✗ {files['main']}:8: keys.alice.pipeline: key 'alice' names pipeline 'paymnts'" in err


def test_conflicts_between_files_are_load_errors_with_file_line_and_did_you_mean(tmp_path):
    """A key naming a pipeline that is not served (with the closest name), two files writing
    `keys:`, and two pipelines of one name each stop `lynkr run pipelines/` before it listens."""
    folder = tmp_path / "pipelines"
    files = write_folder(folder, "http://127.0.0.1:9")
    assert load_front(folder).name == "main"
    text = files["main"].read_text()
    files["main"].write_text(text.replace("pipeline: payments", "pipeline: paymnts"))
    with pytest.raises(ConfigError) as e:
        load_front(folder)
    assert e.value.file == str(files["main"]) and e.value.line == 8
    assert "key 'alice' names pipeline 'paymnts', which is not served here" in str(e.value)
    assert "did you mean 'payments'?" in str(e.value)
    files["main"].write_text(text)
    files["search"].write_text(files["search"].read_text() + "keys:\n  dave: {secret: dave-0123456789abcdef}\n")
    with pytest.raises(ConfigError) as e:
        load_front(folder)
    assert "keys: set here and in" in str(e.value) and e.value.file == str(files["search"]) and e.value.line == 8
    files["search"].write_text(PROJECT.format(name="payments", url="http://127.0.0.1:9", model="m"))
    with pytest.raises(ConfigError) as e:
        load_front(folder)
    assert "pipeline name 'payments' is also" in str(e.value)


def test_a_single_file_refuses_a_key_naming_another_pipeline(tmp_path):
    """Served alone, a pipeline file's keys may name only that pipeline."""
    files = write_folder(tmp_path / "pipelines", "http://127.0.0.1:9")
    with pytest.raises(ConfigError) as e:
        load_front(files["main"])
    assert "team 'searchers' names pipeline 'search', which is not served here (served: main)" in str(e.value)
