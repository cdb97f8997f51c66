"""One format for every log line of every Lynkr process (the server, its workers, the DuckDB writer):
`HH:MM:SS level message` as text, or one JSON object a line (`--log-format json`, or
LYNKR_LOG_FORMAT, which `lynkr run` passes on to the processes it starts).

A record may carry `fields` (a dict: the JSON line's keys) and `text` (its text line): the request
log line is written that way (lynkr/server/logs.py).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import sys

import orjson

__all__ = ["configure", "TextFormatter", "JsonFormatter"]


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        message = getattr(record, "text", None) or record.getMessage()
        line = f"{t} {record.levelname.lower():<5} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name}
        fields = getattr(record, "fields", None)
        if fields is not None:
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure(level: str = "info", fmt: str | None = None) -> None:
    """One handler on stderr for every logger, in the chosen format (default: LYNKR_LOG_FORMAT, else text)."""
    fmt = fmt or os.environ.get("LYNKR_LOG_FORMAT") or "text"
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
