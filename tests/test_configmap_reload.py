"""Hot reload of a pipeline mounted from a Kubernetes ConfigMap.

The kubelet never edits the visible file: `pipeline.yaml` is a symlink to `..data/pipeline.yaml`,
`..data` a symlink to a timestamped folder. An update writes a new timestamped folder, points a
`..data_tmp` symlink at it and renames that over `..data` (atomic), then deletes the old folder
(kubernetes pkg/volume/util/atomic_writer.go). These tests build exactly that layout, run a real
`lynkr run` on it and swap `..data` the same way."""
import asyncio
import os
import re
import shutil
import time
from pathlib import Path

import aiohttp

from tests.helpers.reliability_util import LynkrProcess

H = Path(__file__).parent / "helpers" / "engine_stages.py"
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def answer_pipeline(text: str, name: str | None = None, process: bool = True) -> str:
    """A pipeline answering `text`; `process`: it holds the process's sections (telemetry off)."""
    return (f"version: 1\nname: {name or 'p-' + text}\n"
            f"stages:\n"
            f'  - id: ans\n'
            f'    uses: "{H}:Answer"\n'
            f'    with: {{text: "{text}"}}\n'
            + ("telemetry: {enabled: false}\n" if process else ""))


class ConfigMapVolume:
    """A folder laid out and updated the way the kubelet's atomic writer does it."""

    def __init__(self, root: Path, files: dict[str, str]):
        self.root = root
        root.mkdir()
        self.current = self._write_payload(files)
        os.symlink(self.current, root / "..data")
        for name in files:
            os.symlink(f"..data/{name}", root / name)

    def _write_payload(self, files: dict[str, str]) -> str:
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.monotonic_ns() % 10**9:09d}"
        folder = self.root / stamp
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
        return stamp

    def update(self, files: dict[str, str]) -> None:
        old, self.current = self.current, self._write_payload(files)
        os.symlink(self.current, self.root / "..data_tmp")
        os.rename(self.root / "..data_tmp", self.root / "..data")
        shutil.rmtree(self.root / old)


async def answer(url: str, prefix: str = "") -> tuple[int, str]:
    async with aiohttp.ClientSession() as s:
        async with s.post(url + prefix + "/v1/messages", json=BODY) as r:
            data = await r.json()
            return r.status, data["content"][0]["text"] if r.status == 200 else str(data)


async def until(check, timeout: float = 30.0):
    """Polls `check` (async, returns a truthy value when done) until it holds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_configmap_swap_serves_the_new_pipeline_and_keeps_the_last_good_one(tmp_path):
    """A ConfigMap update (new `..data` target, the visible symlink untouched) is picked up by the
    running `lynkr run`; an update to an invalid pipeline is logged with file, YAML path and line,
    the last good pipeline keeps answering, and a later valid update is served again."""
    volume = ConfigMapVolume(tmp_path / "config", {"pipeline.yaml": answer_pipeline("one")})
    workdir = tmp_path / "work"
    workdir.mkdir()
    lynkr = LynkrProcess(volume.root / "pipeline.yaml", cwd=workdir, reload=True,
                         extra_env={"LYNKR_ADMIN_TOKEN": "t"})
    try:
        await lynkr.ready()
        assert await answer(lynkr.url) == (200, "one")

        volume.update({"pipeline.yaml": answer_pipeline("two")})
        await until(lambda: _answers(lynkr.url, "two"))

        bad = answer_pipeline("three").replace("    uses:", "    usez:")
        volume.update({"pipeline.yaml": bad})
        line = await until(lambda: _reload_failure(lynkr))
        assert f"{volume.root / 'pipeline.yaml'}:5:" in line, line      # the file as mounted, usez's line
        assert "stages[0]" in line and "usez" in line and "did you mean 'uses'" in line, line
        assert await answer(lynkr.url) == (200, "two")
        info = await _admin_pipeline(lynkr.url)
        assert info["name"] == "p-two" and "stages[0]" in info["last_error"]

        volume.update({"pipeline.yaml": answer_pipeline("four")})
        await until(lambda: _answers(lynkr.url, "four"))
        assert lynkr.proc.poll() is None
    finally:
        lynkr.kill()


async def _answers(url: str, text: str, prefix: str = "") -> bool:
    return await answer(url, prefix) == (200, text)


async def test_a_folder_of_pipelines_from_a_configmap_reloads_what_changed(tmp_path):
    """`lynkr run` on a ConfigMap volume holding several pipelines: an update that changes one of
    them serves the new one, leaves the others as they were (not even rebuilt, though the kubelet
    rewrote every file), and an invalid one is logged under the file's mounted name and line while
    every pipeline keeps answering."""
    front, search = answer_pipeline("main", name="main"), answer_pipeline("s-one", name="search", process=False)
    volume = ConfigMapVolume(tmp_path / "config", {"main.yaml": front, "search.yaml": search})
    workdir = tmp_path / "work"
    workdir.mkdir()
    lynkr = LynkrProcess(volume.root, cwd=workdir, reload=True)
    try:
        await lynkr.ready()
        assert await answer(lynkr.url) == (200, "main")
        assert await answer(lynkr.url, "/p/search") == (200, "s-one")

        volume.update({"main.yaml": front, "search.yaml": answer_pipeline("s-two", name="search", process=False)})
        await until(lambda: _answers(lynkr.url, "s-two", "/p/search"))
        assert "pipeline search (search.yaml) reloaded" in lynkr.output()
        assert "pipeline main (main.yaml) reloaded" not in lynkr.output()

        bad = answer_pipeline("s-three", name="search", process=False).replace("    uses:", "    usez:")
        volume.update({"main.yaml": front, "search.yaml": bad})
        line = await until(lambda: _reload_failure(lynkr))
        assert f"{volume.root / 'search.yaml'}:5:" in line and "did you mean 'uses'" in line, line
        assert await answer(lynkr.url) == (200, "main")
        assert await answer(lynkr.url, "/p/search") == (200, "s-two")
    finally:
        lynkr.kill()


async def _reload_failure(lynkr: LynkrProcess) -> str | None:
    m = re.search(r"^.*pipeline reload failed.*$", lynkr.output(), re.M)
    return m.group(0) if m else None


async def _admin_pipeline(url: str) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/v1/admin/pipeline", headers={"authorization": "Bearer t"}) as r:
            assert r.status == 200
            return await r.json()
