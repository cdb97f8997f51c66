"""Where the classes a pipeline names come from, by name: stages (`uses:`) and provider kinds (`kind:`).

Stage classes are plugins: the built-ins of the `lynkr.stages` package (its `DEFAULT_STAGES`), the
`lynkr.stages` entry-point group, and `./path.py:Class` for a project's own stage. Provider kinds
map to `module:Class` (imported when a pipeline uses them). Everything is loaded by name, so
nothing below the stages and providers imports them (docs/architecture.md), and nothing registers
on import: `load_registry()` is called explicitly, once.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from lynkr.kit.cache import remembered
from lynkr.stage import Stage

__all__ = ["load_registry", "load_path_stage", "stage_path", "unloaded_stage", "StageInfo", "PROVIDER_KINDS",
           "provider_class", "BUILTIN_STAGES", "STAGE_DIRS_ENV"]

BUILTIN_STAGES = "lynkr.stages"         # the package of the built-in stages

# kind -> "module:Class"; imported lazily so a pipeline pays only for the kinds it uses.
PROVIDER_KINDS: dict[str, str] = {
    "anthropic": "lynkr.providers.anthropic:AnthropicProvider",
    "azure_anthropic": "lynkr.providers.anthropic:AnthropicProvider",
    "ollama": "lynkr.providers.ollama:OllamaProvider",
    "openai": "lynkr.providers.openai:OpenAIProvider",
    "azure_openai": "lynkr.providers.openai:AzureOpenAIProvider",
    "bedrock": "lynkr.providers.bedrock:BedrockProvider",
    "gemini": "lynkr.providers.gemini:GeminiProvider",
    "vertex": "lynkr.providers.gemini:VertexProvider",
    "demo": "lynkr.providers.demo:DemoProvider",
}


def provider_class(kind: str) -> type:
    mod, _, cls = PROVIDER_KINDS[kind].partition(":")
    return getattr(importlib.import_module(mod), cls)

# Folders outside a pipeline's own where `uses: ./…` may also point (os.pathsep-separated). An
# operator's setting, not the pipeline's: a pipeline under review must not widen its own reach.
STAGE_DIRS_ENV = "LYNKR_STAGE_DIRS"


class StageInfo:
    def __init__(self, cls: type[Stage], source: str):
        self.cls = cls
        self.source = source          # builtin | entry point name | path


@remembered(max_entries=1)
def load_registry() -> dict[str, StageInfo]:
    builtin = importlib.import_module(BUILTIN_STAGES)
    found: dict[str, StageInfo] = {}
    for modname in builtin.DEFAULT_STAGES:
        mod = importlib.import_module(f"{BUILTIN_STAGES}.{modname}")
        for cls in _stage_classes(mod):
            found[cls.name] = StageInfo(cls, "builtin")
    allow = os.environ.get("LYNKR_LOAD_PLUGINS")
    allowed = {a.strip() for a in allow.split(",")} if allow else None
    for ep in entry_points(group="lynkr.stages"):
        if allowed is not None and ep.name not in allowed:
            continue
        obj = ep.load()
        for cls in ([obj] if inspect.isclass(obj) else _stage_classes(obj)):
            found.setdefault(cls.name, StageInfo(cls, f"entry point {ep.name} ({ep.value})"))
    return found


def _stage_classes(mod) -> list[type[Stage]]:
    return [
        obj for obj in vars(mod).values()
        if inspect.isclass(obj) and issubclass(obj, Stage) and obj is not Stage
        and obj.__module__ == mod.__name__ and obj.name
    ]


def stage_path(spec: str, base_dir: Path) -> tuple[Path, str]:
    """(the file, the class name) of `./stages/redact.py:Redact`, relative to the pipeline file's
    folder, which the file must be inside (symlinks resolved) unless LYNKR_STAGE_DIRS lists
    the folder it is in."""
    path_part, sep, cls_name = spec.partition(":")
    if not sep or not cls_name:
        raise ValueError(f"expected './file.py:ClassName', got {spec!r}")
    path = (base_dir / path_part).resolve()
    roots = [base_dir.resolve()] + [Path(d).resolve() for d in os.environ.get(STAGE_DIRS_ENV, "").split(os.pathsep) if d]
    if not any(path.is_relative_to(r) for r in roots):
        raise ValueError(f"{path} is outside the pipeline's folder {roots[0]}; a stage file must be inside it "
                         f"(or in a folder listed in {STAGE_DIRS_ENV})")
    if not path.is_file():
        raise ValueError(f"stage file {path} does not exist")
    return path, cls_name


def unloaded_stage(spec: str) -> type[Stage]:
    """A stand-in for a project's stage file that is not imported (`lynkr validate` without
    --load-stages): its options are not checked and it never runs."""
    class Unloaded(Stage):
        name = spec
        summary = "not imported (lynkr validate --load-stages imports it)"
        options_schema = {"type": "object"}

        async def run(self, x):
            raise RuntimeError(f"stage {spec} was not loaded")
    return Unloaded


def load_path_stage(spec: str, base_dir: Path) -> type[Stage]:
    """Import the class of `./stages/redact.py:Redact` (see stage_path for where it may be)."""
    path, cls_name = stage_path(spec, base_dir)
    modname = f"lynkr_user_stage_{abs(hash(str(path)))}"
    sp = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(sp)
    sys.modules[modname] = mod
    sp.loader.exec_module(mod)
    cls = getattr(mod, cls_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, Stage)):
        raise ValueError(f"{path} has no Stage subclass named {cls_name}")
    return cls
