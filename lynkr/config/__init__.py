"""Pipeline configuration: load, render, validate."""
from lynkr.config.loader import TIERS, LoadedConfig, load_config, redacted
from lynkr.config.schema import BASE_SCHEMA, assemble_schema

__all__ = ["TIERS", "LoadedConfig", "load_config", "redacted", "BASE_SCHEMA", "assemble_schema"]
