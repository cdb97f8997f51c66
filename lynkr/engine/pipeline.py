"""A built pipeline: providers and stage objects from one LoadedConfig, and its plan."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Mapping

from lynkr.config import LoadedConfig, load_config
from lynkr.errors import ConfigError
from lynkr.exchange import Exchange
from lynkr.stage import BuildContext, Stage
from lynkr.engine.executor import run_after, run_request
from lynkr.engine.plan import Plan, compile_plan

__all__ = ["Pipeline", "build_pipeline", "load_pipeline"]

log = logging.getLogger("lynkr.engine")


class Pipeline:
    def __init__(self, cfg: LoadedConfig, stages: dict[str, Stage], providers: dict, plan: Plan):
        self.cfg = cfg
        self.stages = stages
        self.providers = providers
        self.plan = plan
        self.loaded_at = time.time()
        self.in_flight = 0
        self._retired = False
        self._closed = False

    name = property(lambda self: self.cfg.name)
    hash = property(lambda self: self.cfg.hash)
    file = property(lambda self: self.cfg.file)
    config = property(lambda self: self.cfg.data)

    async def handle(self, x: Exchange) -> Exchange:
        """Run the request phase. The caller must call `finish(x)` once the response is sent."""
        x.pipeline = self
        self.in_flight += 1
        try:
            return await run_request(self.plan, x)
        except BaseException:
            self.in_flight -= 1
            raise

    async def finish(self, x: Exchange) -> None:
        try:
            await run_after(x)
        finally:
            self.in_flight -= 1
            if self._retired and self.in_flight == 0:
                await self.aclose()

    async def explain(self, x: Exchange) -> Exchange:
        x.dry_run = True
        x.pipeline = self
        return await run_request(self.plan, x)

    async def retire(self) -> None:
        """Replaced by a newer pipeline: close once the last in-flight request finishes."""
        self._retired = True
        if self.in_flight == 0:
            await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stage in self.stages.values():
            close = getattr(stage, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.exception("closing stage %s failed", stage.id)
        for provider in self.providers.values():
            close = getattr(provider, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.exception("closing provider failed")

    @property
    def closed(self) -> bool:
        return self._closed


def build_pipeline(cfg: LoadedConfig, *, dry_run: bool = False, shared: dict | None = None) -> Pipeline:
    """Build providers and stages. Raises ConfigError; never leaves half-built resources open."""
    from lynkr.providers import build_providers

    errors: list[ConfigError] = []     # every problem of the file, reported together (lynkr validate)
    providers = build_providers(cfg, errors)
    state_dir = cfg.data.get("state_dir") or ".lynkr"
    stages: dict[str, Stage] = {}
    shared = shared if shared is not None else {}
    try:
        for i, st in enumerate(cfg.data["stages"]):
            if st["id"] in cfg.off:
                continue    # switched off: never built, so it opens no store and loads no model
            cls = cfg.stage_classes[st["id"]]
            options = {**cls.defaults(), **(st.get("with") or {})}
            ctx = BuildContext(pipeline_name=cfg.name, pipeline_hash=cfg.hash, config=cfg.data, stage_id=st["id"],
                               file=cfg.file, providers=providers, state_dir=state_dir, shared=shared, dry_run=dry_run,
                               index=i, cfg=cfg)
            try:
                stages[st["id"]] = cls(options, ctx)
            except ConfigError as e:
                errors.append(e)
            except Exception as e:
                errors.append(cfg.error(f"stage '{st['id']}' ({st['uses']}) could not be built: {e}", ("stages", i)))
        if errors:
            raise ConfigError.several(errors)
        plan = compile_plan(cfg, stages)
    except BaseException:
        _close_sync(stages, providers)
        raise
    return Pipeline(cfg, stages, providers, plan)


def _close_sync(stages, providers) -> None:
    async def _close():
        for obj in list(stages.values()) + list(providers.values()):
            close = getattr(obj, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    pass
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_close())
    else:
        loop.create_task(_close())


def load_pipeline(path: str | Path, environ: Mapping[str, str] | None = None, *, dry_run: bool = False) -> Pipeline:
    return build_pipeline(load_config(path, environ), dry_run=dry_run)
