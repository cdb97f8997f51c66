"""Telemetry: the DuckDB writer, its schema, and the built-in report queries."""
from lynkr.storage.duckfile import connect_with_retry
from lynkr.telemetry.writer import NullWriter, TelemetryWriter

__all__ = ["NullWriter", "TelemetryWriter", "connect_with_retry"]
