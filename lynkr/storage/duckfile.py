"""A DuckDB file worked on in short batches (telemetry rows, cache entries), by the one writer
process or, without it, by the process itself.

DuckDB lets one process hold a file open for writing, and a reader in another process cannot
open it at all while it is held. So a file is attached for each batch and detached straight
after, and `lynkr report` (or a second `lynkr run`) opens it in between. The instance the file
is attached to lives as long as the process: creating one (`duckdb.connect(file)`) costs 25–50 ms
here and closing it as much again; ATTACH + DETACH is about a millisecond, plus the checkpoint.

    with attached(path, "tele") as con:     # the file's tables are tele.<table>
        insert(con, "tele.requests", names, rows)
"""
from __future__ import annotations

from contextlib import contextmanager

import os
import random
import time

import numpy as np

__all__ = ["Attached", "attached", "connect_with_retry", "insert", "insert_json", "lock_errors", "release"]


def lock_errors() -> tuple:
    """What DuckDB raises while another process holds a file's lock, or this process has it
    attached for a moment: IOException, and a "file handle conflict" as ResourceInUseException
    (DuckDB 1.5+) or BinderException (1.4, the LTS the lake extensions are built for). Callers
    still check the message for "lock" or "conflict"."""
    import duckdb

    return (duckdb.IOException, duckdb.BinderException) + (
        (duckdb.ResourceInUseException,) if hasattr(duckdb, "ResourceInUseException") else ())


def _retry_locked(op, timeout: float):
    """Run `op` until the file's lock is free (another worker or a report holds it for a moment)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return op()
        except lock_errors() as e:
            msg = str(e).lower()
            if ("lock" not in msg and "conflict" not in msg) or time.monotonic() > deadline:
                raise
        time.sleep(delay + random.random() * delay)
        delay = min(delay * 2, 0.1)


def connect_with_retry(path: str, *, read_only: bool = False, timeout: float = 10.0):
    import duckdb

    return _retry_locked(lambda: duckdb.connect(path, read_only=read_only), timeout)


class Attached:
    """The file, attached as `alias` to an in-memory instance for the length of a `with`."""

    def __init__(self, path: str, alias: str):
        import duckdb

        self.path = path
        self.alias = alias
        self.db = duckdb.connect(":memory:", config={"threads": 1})

    def __enter__(self):
        quoted = self.path.replace("'", "''")
        _retry_locked(lambda: self.db.execute(f"ATTACH '{quoted}' AS {self.alias}"), 30)
        return self.db

    def __exit__(self, *exc):
        self.db.execute(f"DETACH {self.alias}")

    def close(self) -> None:
        self.db.close()


_files: dict[str, Attached] = {}


def attached(path: str, alias: str) -> Attached:
    """The process's instance for `path` (callers run one batch per file at a time: lynkr.storage.db_service)."""
    f = _files.get(path)
    if f is None:
        f = _files[path] = Attached(path, alias)
    return f


@contextmanager
def transaction(path: str, alias: str):
    """The file attached as `alias`, its statements committed together or not at all."""
    with attached(path, alias) as con:
        con.execute("BEGIN")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def release(path: str) -> None:
    f = _files.pop(path, None)
    if f is not None:
        f.close()


def insert(con, table: str, names: list[str], columns: list[list], *, verb: str = "INSERT") -> None:
    """Rows given as columns (one list per name, in order) into `table`, in one statement.

    DuckDB reads numpy arrays in place; lists bound as parameters (`unnest(?)`) cost ~30 µs a row
    of nine columns, these ~3. Each value stays one element (a vector's list too)."""
    if not columns or not len(columns[0]):
        return
    n = len(columns[0])
    batch = {name: np.fromiter(col, dtype=object, count=n) for name, col in zip(names, columns)}
    con.register("_batch", batch)
    try:
        con.execute(f"{verb} INTO {table} ({', '.join(names)}) SELECT {', '.join(names)} FROM _batch")
    finally:
        con.unregister("_batch")


def insert_json(con, table: str, columns, file: str) -> None:
    """The rows of a JSON array file (`[{column: value}]`) into `table`: keys a row lacks are NULL,
    and the column types are given (`columns`: [(name, type)]), never guessed from the rows."""
    if os.path.getsize(file) <= 2:          # []
        return
    names = ", ".join(c for c, _t in columns)
    spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns) + "}"
    con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM read_json(?, format='array', columns={spec})", [file])
