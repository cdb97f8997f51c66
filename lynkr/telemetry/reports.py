"""`lynkr report`: built-in SQL reports (lynkr/telemetry/reports/*.sql), `--sql` and `--export`.

Reports run on an in-memory DuckDB that ATTACHes the telemetry file read-only, with
`requests` and `stage_events` as views filtered by `--since` and `--pipeline`. So a report
can never write to the file, and it works while a server is running (the writer holds the
file only while it writes a batch; we retry meanwhile).

The `requests` view adds the priced columns of `reports/_priced.sql` (cost_usd, baseline_usd,
saved_usd, tokens_saved, cache_hit, priced), computed from a `prices` table that is filled at
query time from the catalogue and the pipeline's `models:` (lynkr/telemetry/pricing.py).
Once the views exist, file access is switched off and the configuration locked, so `--sql`
cannot ATTACH, COPY or read other files either.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Mapping

__all__ = ["REPORTS_DIR", "list_reports", "run_query", "run_reports", "export_parquet", "add_report_arguments",
           "run_report_cli", "ReportError", "NoRequests"]

REPORTS_DIR = Path(__file__).parent / "reports"
DEFAULT_PATH = ".lynkr/telemetry.duckdb"
TABLES = ("requests", "stage_events")
# Statement types `--sql` may run: reading only (DESCRIBE, SHOW and SUMMARIZE are SELECTs to DuckDB).
_READ_STATEMENTS = {"SELECT", "EXPLAIN"}


class ReportError(Exception):
    pass


class NoRequests(ReportError):
    """The telemetry file does not exist yet or holds no tables."""


def list_reports() -> dict[str, str]:
    """name -> first comment line of the SQL file (files starting with `_` are building blocks)."""
    out = {}
    for f in sorted(REPORTS_DIR.glob("*.sql")):
        if f.name.startswith("_"):
            continue
        text = f.read_text()
        first = text.splitlines()[0] if text else ""
        out[f.stem] = first.lstrip("- ").strip()
    return out


def parse_since(text: str | None) -> str | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not m:
        raise ReportError(f"--since takes a duration like 30m, 24h, 7d or 2w, not {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    words = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
    return f"{n} {words[unit]}"


def _filters(since: str | None, pipeline: str | None, alias: str = "") -> str:
    conds = []
    if since:
        # Timestamps are stored in UTC without a zone.
        conds.append(f"{alias}ts >= (now() AT TIME ZONE 'UTC') - INTERVAL '{parse_since(since)}'")
    if pipeline:
        conds.append(f"{alias}pipeline = '" + pipeline.replace("'", "''") + "'")
    return (" WHERE " + " AND ".join(conds)) if conds else ""


def _attach(con, path: str, timeout: float) -> None:
    import duckdb

    from lynkr.storage.duckfile import lock_errors

    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            # A literal: DuckDB 1.4 takes no parameter in ATTACH.
            con.execute(f"ATTACH '{_sql_str(path)}' AS tel (READ_ONLY)")
            return
        except lock_errors() as e:
            # Another process's writer holds the lock, or this process's writer has the file open
            # for a batch ("file handle conflict"): both last milliseconds.
            msg = str(e).lower()
            if ("lock" not in msg and "conflict" not in msg) or time.monotonic() > deadline:
                raise ReportError(f"cannot open {path}: {str(e).splitlines()[0]}") from None
        except duckdb.Error as e:
            raise ReportError(f"cannot open {path} as a DuckDB telemetry file: {str(e).splitlines()[0]}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _requests_table(con) -> str:
    """The raw requests table, with the columns a file written by an older Lynkr lacks as NULLs
    (columns are only ever added: lynkr/telemetry/schema.py)."""
    from lynkr.telemetry.schema import REQUEST_COLUMNS

    have = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() "
                                      "WHERE database_name = 'tel' AND table_name = 'requests'").fetchall()}
    missing = [f"NULL::{t} AS {c}" for c, t in REQUEST_COLUMNS if c not in have]
    return "tel.main.requests" if not missing else f"(SELECT *, {', '.join(missing)} FROM tel.main.requests)"


def connect(path: str | dict, *, since: str | None = None, pipeline: str | None = None, config: Mapping | None = None,
            timeout: float = 10.0, lock: bool = True, materialize: bool = False):
    """An in-memory connection with the telemetry file attached read-only and the report views made.

    `config` is the pipeline's config dict, for its `models:` prices. With `lock`, file access is
    off afterwards (what `--sql` gets); `export_parquet` passes lock=False to write its files.
    With `materialize`, `requests` is priced once into a temp table instead of a view, for
    running several reports on one connection (the dashboard); stage_events stays a view."""
    import duckdb

    from lynkr.telemetry.pricing import PriceTable

    con = _open(path, timeout)
    try:
        present = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'tel'").fetchall()}
        if "requests" not in present:
            raise NoRequests(f"{_name(path)} holds no telemetry tables yet")
        prices = PriceTable(config)
        called = con.execute("SELECT DISTINCT provider, model FROM tel.main.requests").fetchall()
        asked = [r[0] for r in con.execute("SELECT DISTINCT requested_model FROM tel.main.requests").fetchall()]
        con.execute("CREATE TEMP TABLE prices (provider VARCHAR, model VARCHAR, input DOUBLE, output DOUBLE, "
                    "cache_read DOUBLE, cache_write DOUBLE, cache_write_1h DOUBLE, source VARCHAR)")
        rows = prices.rows(called, asked)
        if rows:
            con.executemany("INSERT INTO prices VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        priced = (REPORTS_DIR / "_priced.sql").read_text().replace("{where}", _filters(since, pipeline, "r."))
        priced = priced.replace("{requests}", _requests_table(con))
        kind = "TABLE" if materialize else "VIEW"
        con.execute(f"CREATE TEMP {kind} requests AS " + _strip_comments(priced))
        if "stage_events" in present:
            con.execute("CREATE TEMP VIEW stage_events AS SELECT * FROM tel.main.stage_events"
                        + _filters(since, pipeline))
        # DuckDB 1.x–2.0's compressed materialization mis-casts integer sums in an ordered CTE
        # ("INT128 … can't be cast … INT8" in the tiers report); the rows are few, so turn it off.
        con.execute("SET disabled_optimizers = 'compressed_materialization'")
        if lock:
            if isinstance(path, dict) and path.get("data_path"):
                # The lake's Parquet files stay readable; nothing else does.
                con.execute(f"SET allowed_directories = ['{_sql_str(_folder(path['data_path']))}']")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _open(path: str | dict, timeout: float):
    """An in-memory DuckDB with the telemetry attached read-only as `tel`: the file `path`, or the
    DuckLake whose settings `path` is (`telemetry.lake`: every replica's rows)."""
    import duckdb

    if isinstance(path, dict):
        from lynkr.storage.lake import LakeError, open_lake
        try:
            return open_lake(path["catalog"], path.get("data_path"), "tel", read_only=True)
        except LakeError as e:
            raise ReportError(f"telemetry.lake.{e.field}: {e}") from None
    if not Path(path).exists():
        raise NoRequests(f"no telemetry file at {path} (no requests yet, or a different telemetry.path)")
    if Path(path).stat().st_size == 0:
        raise NoRequests(f"{path} is empty")
    con = duckdb.connect()
    try:
        _attach(con, path, timeout)
    except BaseException:
        con.close()
        raise
    return con


def _name(path: str | dict) -> str:
    if isinstance(path, dict):
        from lynkr.storage.lake import redact
        return "the lake " + redact(path["catalog"])
    return str(path)


def _folder(data_path: str) -> str:
    return data_path if data_path.endswith("/") else data_path + "/"


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def _check_read_only(con, sql: str) -> None:
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise ReportError(f"SQL error: {str(e).splitlines()[0]}") from None
    if not statements:
        raise ReportError("SQL error: no statement to run")
    for st in statements:
        kind = str(st.type).rsplit(".", 1)[-1]
        if kind not in _READ_STATEMENTS:
            raise ReportError(f"reports are read-only: --sql runs SELECT queries, not {kind} "
                              "(the telemetry file is opened read-only and was not changed)")


def _execute(con, sql: str) -> tuple[list[str], list[tuple]]:
    import duckdb

    try:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description] if cur.description else []
        return cols, cur.fetchall()
    except duckdb.Error as e:
        msg = str(e).split("\n")[0]
        if "read-only" in msg.lower() or "read only" in msg.lower() or "disabled by configuration" in msg.lower():
            raise ReportError(f"reports are read-only: {msg}") from None
        raise ReportError(f"SQL error: {msg}") from None


def run_query(path: str, sql: str, **filters) -> tuple[list[str], list[tuple]]:
    con = connect(path, **filters)
    try:
        _check_read_only(con, sql)
        return _execute(con, sql)
    finally:
        con.close()


def count_requests(con) -> int:
    return con.execute("SELECT count(*) FROM requests").fetchone()[0]


def run_reports(path: str, names: list[str], **filters) -> dict:
    """Several built-in reports on one connection (the dashboard's JSON): {name: {columns, rows}}."""
    con = connect(path, materialize=True, **filters)
    try:
        out = {"requests": count_requests(con)}
        for name in names:
            cols, rows = _execute(con, report_sql(name))
            out[name] = {"columns": cols, "rows": [[_jsonable(v) for v in r] for r in rows]}
        return out
    finally:
        con.close()


def _jsonable(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def report_sql(name: str) -> str:
    f = REPORTS_DIR / f"{name}.sql"
    if name.startswith("_") or not f.is_file():
        from lynkr.errors import did_you_mean
        hint = did_you_mean(name, list_reports())
        raise ReportError(f"no report named '{name}'" + (f"; {hint}" if hint else "") +
                          f" (available: {', '.join(list_reports())})")
    return f.read_text()


def export_parquet(path: str, out_dir: str, *, memory: str | None = None, **filters) -> list[tuple[str, int]]:
    """Write the raw tables (as stored, no priced columns) as Parquet: [(file, rows)]. With
    `memory` (a memory stage's file), its memories too: user data, so only when asked."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = connect(path, lock=False, **filters)
    try:
        written = []
        for table in TABLES:
            target = out / f"{table}.parquet"
            # The raw columns only: prices belong to whoever queries the merged files.
            src = f"SELECT * FROM tel.main.{table}" + _filters(filters.get("since"), filters.get("pipeline"))
            con.execute(f"COPY ({src}) TO '{_sql_str(target)}' (FORMAT parquet, COMPRESSION zstd)")
            n = con.execute(f"SELECT count(*) FROM read_parquet('{_sql_str(target)}')").fetchone()[0]
            written.append((str(target), n))
        if memory:
            written.append(_export_memories(con, memory, out / "memories.parquet"))
        return written
    finally:
        con.close()


def _export_memories(con, memory: str, target: Path) -> tuple[str, int]:
    if not Path(memory).is_file():
        raise ReportError(f"no memory file at {memory}")
    con.execute(f"ATTACH '{_sql_str(memory)}' AS memx (READ_ONLY)")
    try:
        con.execute("COPY (SELECT id, tenant, project, text, kind, source, importance, created, accessed, expires "
                    f"FROM memx.memories ORDER BY project, created) TO '{_sql_str(target)}' (FORMAT parquet, COMPRESSION zstd)")
    finally:
        con.execute("DETACH memx")
    n = con.execute(f"SELECT count(*) FROM read_parquet('{_sql_str(target)}')").fetchone()[0]
    return str(target), n


def _sql_str(p) -> str:
    return str(p).replace("'", "''")


# -- formatting ------------------------------------------------------------------------------

def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def format_rows(cols: list[str], rows: list[tuple], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([dict(zip(cols, r)) for r in rows], default=str, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        w.writerows(rows)
        return buf.getvalue().rstrip("\n")
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    if fmt == "markdown":
        out = ["| " + " | ".join(cols) + " |", "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(out)
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)), "  ".join("-" * w for w in widths)]
    for r in cells:
        out.append("  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths)))
    return "\n".join(out)


def _numeric(v: str) -> bool:
    return bool(re.fullmatch(r"-?[\d,]+(\.\d+)?(e[+-]?\d+)?", v))


# -- CLI -------------------------------------------------------------------------------------

def add_report_arguments(p) -> None:
    p.add_argument("name", nargs="?", help="a built-in report (omit to list them)")
    p.add_argument("--sql", help="run your own (read-only) SQL over `requests`, `stage_events` and `prices`")
    p.add_argument("--db", default=None, help=f"telemetry file (default: telemetry.path of --config, else $LYNKR_TELEMETRY, else {DEFAULT_PATH})")
    p.add_argument("--config", help="a pipeline file: its telemetry.path and its `models:` prices")
    p.add_argument("--since", help="only rows newer than this: 30m, 24h, 7d, 2w")
    p.add_argument("--pipeline", help="only rows of this pipeline name")
    p.add_argument("--format", choices=["table", "json", "csv", "markdown"], default="table")
    p.add_argument("--export", metavar="DIR", help="write the raw tables as Parquet files into DIR (honours --since/--pipeline)")
    p.add_argument("--memory", metavar="FILE", help="with --export: also write the memory stage's memories (user data; "
                                                     "e.g. .lynkr/memory.duckdb) as memories.parquet")


def _config(args) -> dict | None:
    if not args.config:
        return None
    from lynkr.config import load_config
    return load_config(args.config).data


def _db_path(args, config: dict | None) -> str | dict:
    """The file to read, or `telemetry.lake` (the whole fleet's rows) when the pipeline has one."""
    if args.db:
        return args.db
    if config is not None:
        tele = config.get("telemetry") or {}
        return tele.get("lake") or tele.get("path") or DEFAULT_PATH
    # pipelines/default.yaml takes its telemetry.path from LYNKR_TELEMETRY.
    return os.environ.get("LYNKR_TELEMETRY") or DEFAULT_PATH


def run_report_cli(args) -> int:
    from lynkr.errors import ConfigError

    if not args.name and not args.sql and not args.export:
        for name, desc in list_reports().items():
            print(f"{name:<10} {desc}")
        return 0
    try:
        config = _config(args)
        path = _db_path(args, config)
        filters = {"since": args.since, "pipeline": args.pipeline}
        parse_since(args.since)
        if args.export:
            for file, n in export_parquet(path, args.export, memory=args.memory, **filters):
                print(f"✓ {file}: {n} rows")
            return 0
        sql = args.sql or report_sql(args.name)
        con = connect(path, config=config, **filters)
        try:
            if args.sql:
                _check_read_only(con, sql)
            total = count_requests(con)
            cols, rows = _execute(con, sql) if total or args.sql else ([], [])
        finally:
            con.close()
    except NoRequests as e:
        if args.export:
            print(f"✗ {e}", file=sys.stderr)
            return 1
        print("[]" if args.format == "json" else f"no requests yet ({e})")
        return 0
    except (ReportError, ConfigError) as e:
        print(f"✗ {e}", file=sys.stderr)
        return 1
    if not total and not rows:
        print("[]" if args.format == "json" else "no requests yet")
        return 0
    if not rows:
        print("[]" if args.format == "json" else "(no rows)")
        return 0
    print(format_rows(cols, rows, args.format))
    return 0
