"""`lynkr report`: built-in SQL reports (lynkr/telemetry/reports/*.sql) and `--sql`.

Reports run on an in-memory DuckDB that ATTACHes the telemetry file read-only, with
`requests` and `stage_events` as views filtered by `--since` and `--pipeline`. So a report
can never write to the file, and it works while a server is running (the writer holds the
file only while it writes a batch; we retry meanwhile).
"""
from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

__all__ = ["REPORTS_DIR", "list_reports", "run_query", "add_report_arguments", "run_report_cli", "ReportError"]

REPORTS_DIR = Path(__file__).parent / "reports"
DEFAULT_PATH = ".lynkr/telemetry.duckdb"


class ReportError(Exception):
    pass


def list_reports() -> dict[str, str]:
    """name -> first comment line of the SQL file."""
    out = {}
    for f in sorted(REPORTS_DIR.glob("*.sql")):
        first = f.read_text().splitlines()[0] if f.read_text() else ""
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


def connect(path: str, *, since: str | None = None, pipeline: str | None = None, timeout: float = 10.0):
    import duckdb

    if not Path(path).exists():
        raise ReportError(f"no telemetry file at {path} (no requests yet, or a different telemetry.path)")
    con = duckdb.connect()
    import time
    deadline = time.monotonic() + timeout
    while True:
        try:
            con.execute("ATTACH ? AS tel (READ_ONLY)", [str(path)])
            break
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or time.monotonic() > deadline:
                raise ReportError(f"cannot open {path}: {e}") from None
            time.sleep(0.02)
    conds = []
    params: list = []
    if since:
        conds.append(f"ts >= now()::TIMESTAMP - INTERVAL '{parse_since(since)}'")
    if pipeline:
        conds.append("pipeline = '" + pipeline.replace("'", "''") + "'")
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    for table in ("requests", "stage_events"):
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM tel.main.{table}{where}", params)
    return con


def run_query(path: str, sql: str, **filters) -> tuple[list[str], list[tuple]]:
    import duckdb

    con = connect(path, **filters)
    try:
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description] if cur.description else []
        return cols, cur.fetchall()
    except duckdb.Error as e:
        msg = str(e).split("\n")[0]
        if "read-only" in msg.lower() or "read only" in msg.lower() or "cannot" in msg.lower() and "view" in msg.lower():
            raise ReportError(f"reports are read-only: {msg}") from None
        raise ReportError(f"SQL error: {msg}") from None
    finally:
        con.close()


def report_sql(name: str) -> str:
    f = REPORTS_DIR / f"{name}.sql"
    if not f.is_file():
        from ..errors import did_you_mean
        hint = did_you_mean(name, list_reports())
        raise ReportError(f"no report named '{name}'" + (f"; {hint}" if hint else "") +
                          f" (available: {', '.join(list_reports())})")
    return f.read_text()


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
    p.add_argument("--sql", help="run your own (read-only) SQL over `requests` and `stage_events`")
    p.add_argument("--db", default=None, help=f"telemetry file (default: telemetry.path of --config, or {DEFAULT_PATH})")
    p.add_argument("--config", help="a pipeline file whose telemetry.path to read")
    p.add_argument("--since", help="only rows newer than this: 30m, 24h, 7d, 2w")
    p.add_argument("--pipeline", help="only rows of this pipeline name")
    p.add_argument("--format", choices=["table", "json", "csv", "markdown"], default="table")


def _db_path(args) -> str:
    if args.db:
        return args.db
    if args.config:
        from ..config import load_config
        return ((load_config(args.config).data.get("telemetry") or {}).get("path")) or DEFAULT_PATH
    return DEFAULT_PATH


def run_report_cli(args) -> int:
    if not args.name and not args.sql:
        for name, desc in list_reports().items():
            print(f"{name:<12} {desc}")
        return 0
    try:
        sql = args.sql or report_sql(args.name)
        path = _db_path(args)
        cols, rows = run_query(path, sql, since=args.since, pipeline=args.pipeline)
    except ReportError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 1
    if not rows or (args.name and _empty(cols, rows)):
        if args.format == "json":
            print("[]")
        else:
            print("no requests yet")
        return 0
    print(format_rows(cols, rows, args.format))
    return 0


def _empty(cols, rows) -> bool:
    # Aggregates over no rows give one row of NULLs/zeros: that is "no requests yet" too.
    return len(rows) == 1 and "requests" in cols and not rows[0][cols.index("requests")]
