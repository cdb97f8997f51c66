"""The pipeline engine: registry, plan compilation, executor, runtime (hot reload)."""
from lynkr.engine.pipeline import Pipeline, build_pipeline, load_pipeline
from lynkr.engine.runtime import Engine

__all__ = ["Pipeline", "build_pipeline", "load_pipeline", "Engine"]
