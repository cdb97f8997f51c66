"""The stage interface (design.md §4).

A stage is a class with a `name`, an `options_schema` and an async `run(x)`. It is built once per
pipeline load with its validated options and a BuildContext, so anything slow (models, indexes)
is loaded there, not per request.

    class Upper(Stage):
        name = "upper"
        summary = "Upper-cases the last user message."
        options_schema = {"type": "object", "properties": {}, "additionalProperties": False}

        async def run(self, x):
            ...

`critical = False` (the default) means the stage only optimises: if it raises, the request goes
on unchanged and the failure is recorded. `critical = True` stages (provider_call) send their
failure to the stage named by `on_error`, or to the client as an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from lynkr.exchange import Exchange

__all__ = ["Stage", "BuildContext"]


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


class Stage:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    status: ClassVar[str] = "stable"     # stable | beta | experimental
    critical: ClassVar[bool] = False
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
