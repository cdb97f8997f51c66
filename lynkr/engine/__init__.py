"""The pipeline engine: registry, plan compilation, executor, runtime (hot reload)."""
from .pipeline import Pipeline, build_pipeline, load_pipeline
from .runtime import Engine

__all__ = ["Pipeline", "build_pipeline", "load_pipeline", "Engine"]
