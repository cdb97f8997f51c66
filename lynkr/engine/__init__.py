"""The pipeline engine: build a pipeline (providers, stages, plan), run it (executor), hot reload (runtime)."""
from lynkr.engine.pipeline import Pipeline, build_pipeline, load_pipeline
from lynkr.engine.runtime import Engine

__all__ = ["Pipeline", "build_pipeline", "load_pipeline", "Engine"]
