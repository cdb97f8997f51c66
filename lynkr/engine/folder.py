"""Serving a folder of pipelines (`lynkr run pipelines/`): one engine, a pipeline per file, each
hot-reloaded on its own (docs/teams.md, "A pipeline per project").

`current` is the folder's front pipeline (lynkr.config.folder): the one that holds the server
settings, keys, teams, telemetry and dashboard, and serves the requests that name no pipeline;
`pipelines` maps every pipeline's name to it. A change to one file rebuilds that file's pipeline
only, once the checks across files pass (a second file writing `server:`, a key naming a
pipeline no longer served); when they fail, every pipeline keeps serving as it was. The
pipelines share one `shared` dict (breakers per provider name and model, MCP servers by name):
name providers alike only when they are the same upstream.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from lynkr.config import load_config
from lynkr.config.folder import front_of, pipeline_files
from lynkr.errors import ConfigError
from lynkr.engine.pipeline import Pipeline, build_pipeline
from lynkr.engine.runtime import Engine

__all__ = ["FolderEngine", "engine_for"]

log = logging.getLogger("lynkr.engine")


def engine_for(path: str | Path, **kw) -> Engine:
    """The engine for `lynkr run PATH`: a pipeline file's, or a folder's."""
    return FolderEngine(path, **kw) if Path(path).is_dir() else Engine(path, **kw)


class FolderEngine(Engine):
    def __init__(self, folder: str | Path, **kw):
        super().__init__(folder, **kw)
        self.by_file: dict[str, Pipeline] = {}
        self.pipelines: dict[str, Pipeline] = {}

    def serving(self) -> list[Pipeline]:
        return list(self.by_file.values())

    def named(self, name: str) -> Pipeline | None:
        return self.pipelines.get(name)

    def watched_files(self) -> list[str]:
        return pipeline_files(self.path)

    def _state_config(self):
        # `state:` (shared state through Redis) is the front pipeline's, like server and telemetry.
        return front_of([load_config(f, self.environ) for f in pipeline_files(self.path)], folder=self.path)

    async def _build(self) -> Pipeline:
        self._swap(await asyncio.get_running_loop().run_in_executor(None, self._rebuild, None))
        return self.current

    def _rebuild(self, changed: set[str] | None) -> dict[str, Pipeline]:
        """A pipeline for every file of the folder: built anew where `changed` (None: every file),
        the running one elsewhere. Raises ConfigError before anything is swapped in."""
        cfgs = {}
        for f in pipeline_files(self.path):
            old = self.by_file.get(f)
            keep = old is not None and changed is not None and f not in changed
            cfgs[f] = old.cfg if keep else load_config(f, self.environ)
        front_of(list(cfgs.values()), folder=self.path)
        out: dict[str, Pipeline] = {}
        try:
            for f, cfg in cfgs.items():
                old = self.by_file.get(f)
                out[f] = old if old is not None and old.cfg is cfg else build_pipeline(cfg, shared=self.shared)
        except BaseException:
            running = set(map(id, self.by_file.values()))
            for p in out.values():
                if id(p) not in running:
                    _close_soon(p)
            raise
        return out

    def _swap(self, by_file: dict[str, Pipeline]) -> None:
        front = front_of([p.cfg for p in by_file.values()], folder=self.path)
        self.by_file = by_file
        self.pipelines = {p.name: p for p in by_file.values()}
        self.current = next(p for p in by_file.values() if p.cfg is front)

    async def reload(self, changed: set[str] | None = None) -> bool:
        """Rebuild the pipelines of the `changed` files (None: all); False, and nothing changed, when
        a file or the checks across files fail."""
        async with self._reload_lock:
            try:
                by_file = await asyncio.get_running_loop().run_in_executor(None, self._rebuild, changed)
            except ConfigError as e:
                self._fail(str(e))
                return False
            except Exception as e:  # a stage's constructor may raise anything
                self._fail(f"{self.path}: {type(e).__name__}: {e}")
                return False
            old = self.by_file
            self._swap(by_file)
            self.reloads += 1
            self.last_error = None
            for f, p in by_file.items():
                if old.get(f) is not p:
                    log.info("pipeline %s (%s) reloaded (hash %s)", p.name, os.path.basename(f), p.hash)
                    for cb in self.listeners:
                        cb("reload", p)
            for f, p in old.items():
                if by_file.get(f) is not p:
                    await p.retire()
            return True

    def watched_folders(self) -> list[str]:
        return [os.path.abspath(self.path)]      # a file added to the folder is a pipeline too

    async def stop(self) -> None:
        for p in self.serving():
            if p is not self.current:
                await p.retire()
        await super().stop()


def _close_soon(p: Pipeline) -> None:
    try:
        asyncio.get_running_loop().create_task(p.aclose())
    except RuntimeError:
        asyncio.run(p.aclose())
