"""Telemetry in a DuckLake (`telemetry: {lake: {catalog, data_path}}`): the `requests` and
`stage_events` tables of every replica in one lake (lynkr.storage.lake), written by each host's
writer process (lynkr.storage.db_service) and read by `lynkr report`.

Which failure is which:
- At start (`telemetry.lake.create`, before `lynkr run` forks its workers), anything wrong is an
  error that names the option: the extensions missing, the catalog refusing the connection (down,
  wrong password, no such database), a data path that is not writable or not the one the catalog
  was created with. `lynkr run` prints it and exits 1; it does not start half-way.
- Once running, a batch that cannot be committed (the catalog gone, a network cut) is kept in the
  spool (lynkr.storage.lake.Spool: local files, bounded by `spool_max_mb`, kept across restarts) and
  retried, oldest first, before the next batch and on the writers' idle pings, with a backoff of
  1 s doubling to RETRY_MAX_S. Rows are lost only when the spool is full, and then counted.
"""
from __future__ import annotations

import logging
import os
import random
import time

from lynkr.storage import db_service
from lynkr.storage.duckfile import insert_json
from lynkr.storage.lake import LakeError, Spool, check_data_path, open_lake, redact
from lynkr.telemetry.schema import REQUEST_COLUMNS, STAGE_EVENT_COLUMNS, ddl

__all__ = ["LakeStartError", "lake_settings", "lake_key", "check", "start", "create", "write", "SPOOL_MAX_MB"]

log = logging.getLogger("lynkr.telemetry")

ALIAS = "lake"
SPOOL_MAX_MB = 256
RETRY_MAX_S = 10.0


class LakeStartError(Exception):
    """The lake cannot be used at start; `field` is the option under `telemetry.lake` at fault."""

    def __init__(self, message: str, field: str = "catalog"):
        super().__init__(message)
        self.field = field


def lake_settings(lake: dict, telemetry_path: str) -> dict:
    """`telemetry.lake` as the writer process takes it: the spool folder defaults to `lake-spool/`
    beside `telemetry.path` (a local disk: it holds batches while the shared parts are away)."""
    spool = lake.get("spool_path") or os.path.join(os.path.dirname(telemetry_path) or ".", "lake-spool")
    return {"catalog": lake["catalog"], "data_path": lake.get("data_path"), "spool": spool,
            "spool_max_mb": lake.get("spool_max_mb", SPOOL_MAX_MB)}


def lake_key(lake: dict) -> str:
    """The name the writer process knows this lake by (no password: it is logged)."""
    return "lake:" + redact(lake["catalog"])


def check(cfg):
    """The lake of a loaded pipeline (lynkr.config.LoadedConfig), checked and made ready at start:
    None, or the ConfigError naming file, `telemetry.lake.<option>` and line."""
    tele = cfg.data.get("telemetry") or {}
    if not tele.get("lake") or not tele.get("enabled", True):
        return None
    try:
        start(lake_settings(tele["lake"], tele.get("path") or ".lynkr/telemetry.duckdb"))
    except LakeStartError as e:
        return cfg.error(str(e), ("telemetry", "lake", e.field))
    return None


def start(lake: dict) -> None:
    """Check the lake (in the writer process) and make its tables; LakeStartError says what is wrong."""
    try:
        problem = db_service.call("telemetry.lake.create", lake_key(lake), lake)
    except db_service.DBServiceError as e:
        raise LakeStartError(redact(str(e))) from None
    if problem:
        raise LakeStartError(problem["error"], problem.get("field") or "catalog")


class _Sink:
    """One lake as the writer process sees it: a connection (opened again after a failure) and
    the spool of batches that did not reach it."""

    def __init__(self, lake: dict):
        self.catalog = lake["catalog"]
        self.data_path = lake["data_path"]
        self.spool = Spool(lake["spool"], int(float(lake.get("spool_max_mb") or SPOOL_MAX_MB) * (1 << 20)))
        self.con = None
        self.retry_at = 0.0
        self.backoff = 1.0
        self.failures = 0          # commits that failed (each one spooled or dropped a batch)
        self.down_since: float | None = None

    def connect(self):
        if self.con is None:
            self.con = _racing(self._open)
        return self.con

    def _open(self):
        con = open_lake(self.catalog, self.data_path, ALIAS)
        try:
            for stmt in ddl(ALIAS):
                con.execute(stmt)
        except BaseException:
            con.close()
            raise
        return con

    def close(self) -> None:
        if self.con is not None:
            try:
                self.con.close()
            except Exception:
                pass
            self.con = None

    def commit(self, files: dict) -> None:
        con = self.connect()
        con.execute("BEGIN")
        try:
            insert_json(con, f"{ALIAS}.requests", REQUEST_COLUMNS, files["requests"])
            insert_json(con, f"{ALIAS}.stage_events", STAGE_EVENT_COLUMNS, files["events"])
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except Exception:
                pass
            raise

    def drain(self) -> int:
        """Spooled batches into the lake, oldest first: the rows committed."""
        done = 0
        while (batch := self.spool.oldest()) is not None:
            rows, files = batch
            self.commit(files)
            self.spool.done()
            done += rows
        return done

    def write(self, files: dict | None, rows: int) -> dict:
        written = dropped = 0
        if not len(self.spool) or time.monotonic() >= self.retry_at:
            try:
                written += self.drain()
                if files:
                    self.commit(files)
                    written += rows
                    files = None
                self._up()
            except Exception as e:
                self._down(e)
        if files:
            if not self.spool.add(files, rows):
                dropped = rows
                log.error("telemetry lake: the spool is full (%d rows, %d batches); %d rows dropped",
                          self.spool.rows, len(self.spool), rows)
        return {"written": written, "dropped": dropped, "spooled": self.spool.rows, "failures": self.failures}

    def _up(self) -> None:
        if self.down_since is not None:
            log.warning("telemetry lake %s is back after %.0f s; the spool is written",
                        redact(self.catalog), time.monotonic() - self.down_since)
        self.down_since = None
        self.backoff = 1.0

    def _down(self, e: Exception) -> None:
        self.close()
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("telemetry lake %s cannot be written (%s); batches spool in %s until it returns",
                        redact(self.catalog), redact(str(e)).splitlines()[0], self.spool.folder)
        self.retry_at = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, RETRY_MAX_S)


# Replicas starting together on an empty catalog race to create its tables; the loser sees one of these.
_RACE = ("duplicate key", "already exists", "conflict")


def _racing(fn, attempts: int = 8):
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:
            if i == attempts - 1 or not any(w in str(e).lower() for w in _RACE):
                raise
            time.sleep(0.05 * (i + 1) + random.random() * 0.1)


_sinks: dict[str, _Sink] = {}


def _sink(key: str, lake: dict) -> _Sink:
    s = _sinks.get(key)
    if s is None:
        s = _sinks[key] = _Sink(lake)
    return s


@db_service.operation("telemetry.lake.create")
def create(key: str, lake: dict) -> dict | None:
    """Check the lake at start and make its tables: None, or {"error": …, "field": …}."""
    try:
        if not lake.get("data_path"):
            raise LakeError("a lake needs a data_path (a shared folder or s3://…)", "data_path")
        check_data_path(lake["data_path"])
        sink = _sink(key, lake)
        check_data_path(lake["data_path"], sink.connect())
        sink.write(None, 0)            # what an earlier run left in the spool
        return None
    except LakeError as e:
        _sinks.pop(key, None)
        return {"error": str(e), "field": e.field}
    except OSError as e:            # the local spool folder
        _sinks.pop(key, None)
        return {"error": f"the spool folder {lake['spool']} cannot be used: {e.strerror or e}", "field": "spool_path"}
    except Exception as e:          # DuckDB's own errors (the DDL refused): still said, never a traceback
        _sinks.pop(key, None)
        return {"error": redact(str(e)).splitlines()[0], "field": "catalog"}


@db_service.operation("telemetry.lake.write")
def write(key: str, payload: dict) -> dict:
    """One batch (`{"files", "rows", "lake"}`; no files: only retry the spool)."""
    return _sink(key, payload["lake"]).write(payload.get("files"), int(payload.get("rows") or 0))


@db_service.operation("telemetry.lake.release")
def release(key: str, _payload=None) -> None:
    s = _sinks.pop(key, None)
    if s is not None:
        s.close()
