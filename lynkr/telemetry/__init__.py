"""Telemetry: the DuckDB writer, its schema, and the built-in report queries."""
from .writer import NullWriter, TelemetryWriter, connect_with_retry

__all__ = ["NullWriter", "TelemetryWriter", "connect_with_retry"]
