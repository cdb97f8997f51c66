"""Pipeline configuration: load, render, validate."""
from .loader import TIERS, LoadedConfig, check_target, load_config, redacted
from .schema import BASE_SCHEMA, assemble_schema

__all__ = ["TIERS", "LoadedConfig", "check_target", "load_config", "redacted", "BASE_SCHEMA", "assemble_schema"]
