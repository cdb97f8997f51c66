"""The stage interface (design.md §4).

A stage is a class with a `name`, an `options_schema` and an async `run(x)`. It is built once per
pipeline load with its validated options and a BuildContext, so anything slow (models, indexes)
is loaded there, not per request; an option the schema cannot judge is refused there with
`raise ctx.error(message, *option_path)`. While `run` (and `after`) runs, `x.stage_event` is this
stage's own StageEvent: what it did goes in its `detail` and `measure`.

    class Upper(Stage):
        name = "upper"
        summary = "Upper-cases the last user message."
        options_schema = {"type": "object", "properties": {}, "additionalProperties": False}

        async def run(self, x):
            ...

`edits` says how `run` and `after` change `x.request`. The default, "in-place", is always safe:
after such a stage the engine drops the JSON it remembered of the request's parts (lynkr.body) and
serialises them again as they are. A stage that never mutates a part of the request it did not
create (it reads only, or replaces the list or dict it changes: `x.request = {**x.request,
"messages": new}`) declares `edits = "copy-on-write"` and costs nothing (docs/engine.md).

`critical = False` (the default) means the stage only optimises: if it raises, the request goes
on unchanged and the failure is recorded. `critical = True` stages (provider_call) send their
failure to the stage named by `on_error`, or to the client as an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from lynkr.errors import ConfigError
from lynkr.exchange import Exchange, Route

__all__ = ["Stage", "BuildContext", "EDITS"]

EDITS = ("in-place", "copy-on-write")


@dataclass(kw_only=True)
class BuildContext:
    """What a stage may use while it is built: the whole pipeline config and shared services."""

    pipeline_name: str
    pipeline_hash: str
    config: dict                         # the rendered, validated pipeline
    stage_id: str
    file: str | None = None
    providers: dict = field(default_factory=dict)   # name -> provider adapter
    state_dir: str = ".lynkr"                        # where stages keep files (cache stores)
    shared: dict = field(default_factory=dict)       # objects shared between stages of one load
    dry_run: bool = False                            # validate/explain: build without side effects
    index: int = 0                                   # the stage's position in `stages:`
    cfg: Any = None                                  # the LoadedConfig: file and lines for error()

    def error(self, message: str, *option, hint: str | None = None) -> ConfigError:
        """The load-time error for this stage's option at `option` (keys under `with:`), naming the
        file, the YAML path and the line: `raise ctx.error("must increase", "thresholds")`."""
        path = ("stages", self.index, "with", *option)
        if self.cfg is None:
            return ConfigError(message, file=self.file, path=path, hint=hint)
        return self.cfg.error(message, path, hint)

    def route(self, target: str, *option, **kw: Any) -> Route:
        """The `provider:model` an option names, checked against the pipeline's providers
        (`ctx.error` when it is malformed or names no provider)."""
        problem = Route.problem(target, self.config.get("providers") or {})
        if problem is not None:
            raise self.error(problem[0], *option, hint=problem[1])
        return Route.parse(target, **kw)


class Stage:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    status: ClassVar[str] = "stable"     # stable | beta | experimental
    critical: ClassVar[bool] = False
    edits: ClassVar[str] = "in-place"    # in-place | copy-on-write: see the module docstring
    options_schema: ClassVar[dict] = {"type": "object", "properties": {}, "additionalProperties": False}
    examples: ClassVar[list[str]] = []

    def __init__(self, options: dict, ctx: BuildContext):
        self.options = options
        self.ctx = ctx
        self.id = ctx.stage_id

    async def run(self, x: Exchange) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    # `after` and `aclose` are optional; the engine checks for them with hasattr-free class lookups.
    after: Any = None
    aclose: Any = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id!r}>"

    @classmethod
    def defaults(cls) -> dict:
        props = cls.options_schema.get("properties", {})
        return {k: v["default"] for k, v in props.items() if "default" in v}
