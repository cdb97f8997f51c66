"""A DuckLake: tables whose catalog is a PostgreSQL database and whose rows are Parquet files under a
data path (a folder every host mounts, or s3://…), written and read by many DuckDB processes at
once. A fleet's telemetry lives in one: each replica's writer process commits its batches there and
`lynkr report` reads every replica's rows.

    con = open_lake("postgres:host=db dbname=lake user=lynkr password=…", "/shared/lake", "tel")
    con.execute("SELECT count(*) FROM tel.requests")

The extensions come from the package index, never from DuckDB's download site (nothing is fetched
at run time): `duckdb-ext-ducklake` and `duckdb-ext-postgres` install them in DuckDB's own
extension-directory layout inside the `duckdb_ext` package, built for exactly one DuckDB release
(1.4.4, the LTS line; pyproject.toml pins both).

Batches that cannot reach the lake wait in a `Spool`: files in a local folder, oldest first,
bounded in bytes, kept across restarts.
"""
from __future__ import annotations

import fcntl
import os
import re

from lynkr.redact import redact as _mask

__all__ = ["LakeError", "Spool", "open_lake", "extension_directory", "redact", "check_data_path", "s3_secret_options",
           "PINS"]

# What the lake needs (pyproject.toml's dependencies); the extension files are built for this
# DuckDB release only.
PINS = "'duckdb==1.4.4' 'duckdb-ext-ducklake==1.4.4.20260205' 'duckdb-ext-postgres==1.4.4.20260205'"
CONNECT_TIMEOUT_S = 10


class LakeError(Exception):
    """The lake cannot be used; `field` names the option at fault (`catalog` or `data_path`)."""

    def __init__(self, message: str, field: str = "catalog"):
        super().__init__(message)
        self.field = field


def redact(text) -> str:
    """`text` with the catalog's password hidden (`password=…` and `user:pw@` in a URI: lynkr.redact's shapes)."""
    return _mask(str(text))


def extension_directory() -> str | None:
    try:
        import duckdb_ext
    except ImportError:
        return None
    for folder in getattr(duckdb_ext, "__path__", ()):
        d = os.path.join(folder, "extensions")
        if os.path.isdir(d):
            return d
    return None


# libpq waits forever for a host that drops packets, at connect and mid-query; a write must fail
# (and spool) instead. Each is added unless the catalog string sets it.
_LIBPQ_DEFAULTS = {"connect_timeout": str(CONNECT_TIMEOUT_S), "keepalives": "1", "keepalives_idle": "5",
                   "keepalives_interval": "2", "keepalives_count": "3", "tcp_user_timeout": "10000"}


def _with_timeout(catalog: str) -> str:
    kind, _, dsn = catalog.partition(":")
    extra = {k: v for k, v in _LIBPQ_DEFAULTS.items() if k not in dsn}
    if not extra:
        return catalog
    if dsn.startswith(("postgres://", "postgresql://")):
        query = "&".join(f"{k}={v}" for k, v in extra.items())
        return f"{kind}:{dsn}{'&' if '?' in dsn else '?'}{query}"
    return catalog + "".join(f" {k}={v}" for k, v in extra.items())


def _sql_str(s: str) -> str:
    return str(s).replace("'", "''")


def _first_line(e: BaseException) -> str:
    text = redact(str(e)).strip()
    # DuckDB repeats the whole connection string before libpq's reason; the reason is what helps.
    m = re.search(r'Unable to connect to Postgres at "[^"]*": (.*)', text, re.S)
    if m:
        text = m.group(1)
    return " ".join(text.split("\n")[0].split())


def open_lake(catalog: str, data_path: str | None, alias: str, *, read_only: bool = False):
    """An in-memory DuckDB with the lake attached as `alias`. LakeError says what is wrong."""
    import duckdb

    folder = extension_directory()
    con = duckdb.connect(":memory:", config={
        "extension_directory": folder or os.devnull, "autoinstall_known_extensions": False,
        "autoload_known_extensions": False, "threads": 2})
    try:
        for ext in ("ducklake", "postgres"):
            try:
                con.execute(f"LOAD {ext}")
            except duckdb.Error as e:
                raise LakeError(f"the DuckLake extensions cannot be loaded ({_first_line(e)}); "
                                f"install them: pip install {PINS}") from None
        if _on_s3(data_path):
            _s3_secret(con, os.environ)
        opts = ["READ_ONLY"] if read_only else []
        if data_path and not read_only:
            opts.append(f"DATA_PATH '{_sql_str(data_path)}'")
        target = "ducklake:" + _with_timeout(catalog)
        try:
            con.execute(f"ATTACH '{_sql_str(target)}' AS {alias}" + (f" ({', '.join(opts)})" if opts else ""))
        except duckdb.Error as e:
            msg = _first_line(e)
            if "DATA_PATH" in msg:
                raise LakeError(f"{msg.split('You can override')[0].strip()} (the catalog keeps the data path "
                                "it was created with)", "data_path") from None
            raise LakeError(f"cannot attach the DuckLake catalog {redact(catalog)!r}: {msg}") from None
        return con
    except BaseException:
        con.close()
        raise


def _on_s3(data_path: str | None) -> bool:
    return bool(data_path) and data_path.startswith(("s3://", "s3a://"))


def s3_secret_options(env) -> list[str]:
    """DuckDB's S3 secret from the standard AWS variables (what a Kubernetes Secret or an
    instance's environment gives): keys, session token, region, and `AWS_ENDPOINT_URL(_S3)` for an
    S3-compatible store (MinIO, Ceph, R2…), which is then addressed by path, over http or https as
    the URL says."""
    opts = ["TYPE s3"]
    for var, opt in (("AWS_ACCESS_KEY_ID", "KEY_ID"), ("AWS_SECRET_ACCESS_KEY", "SECRET"),
                     ("AWS_SESSION_TOKEN", "SESSION_TOKEN")):
        if env.get(var):
            opts.append(f"{opt} '{_sql_str(env[var])}'")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        opts.append(f"REGION '{_sql_str(region)}'")
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        from urllib.parse import urlsplit
        u = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        opts += [f"ENDPOINT '{_sql_str(u.netloc)}'", "URL_STYLE 'path'", f"USE_SSL {str(u.scheme == 'https').lower()}"]
    return opts


def _s3_secret(con, env) -> None:
    import duckdb

    try:
        con.execute("LOAD httpfs")
    except duckdb.Error as e:
        raise LakeError(f"an s3:// data path needs DuckDB's httpfs extension ({_first_line(e)}); "
                        "install it: pip install 'duckdb-ext-httpfs==1.4.4.20260205'", "data_path") from None
    con.execute(f"CREATE OR REPLACE SECRET lynkr_lake_s3 ({', '.join(s3_secret_options(env))})")


def check_data_path(data_path: str, con=None) -> None:
    """The data path written to once (a probe file) at start, so a read-only mount, a path under a
    file, a missing bucket or refused credentials are said then, not at the first batch. Object
    storage is probed through `con` (an open_lake connection: its S3 secret)."""
    if "://" in data_path:
        if con is not None and _on_s3(data_path):
            _probe_object_store(con, data_path)
        return
    probe = os.path.join(data_path, f".lynkr-probe-{os.getpid()}")
    try:
        os.makedirs(data_path, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.unlink(probe)
    except OSError as e:
        raise LakeError(f"the data path {data_path} is not writable: {e.strerror or e}", "data_path") from None


class Spool:
    """Batches on their way to the lake while it cannot be reached: each batch its files, named
    `<seq>-<rows>.<part>.json`, in a local folder, retried oldest first. Bounded: past `max_bytes`
    a new batch is refused (the caller counts its rows as dropped).

    Two writer processes on one host must not retry the same files: each holds an flock on the
    first numbered sub-folder it can lock, and so adopts what a stopped one left there."""

    def __init__(self, base: str, max_bytes: int):
        self.max_bytes = max_bytes
        os.makedirs(base, exist_ok=True)
        n = 0
        while True:
            folder = os.path.join(base, str(n))
            os.makedirs(folder, exist_ok=True)
            lock = open(os.path.join(folder, "lock"), "a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                n += 1
                continue
            self.folder, self._lock = folder, lock
            break
        self._batches = self._scan()
        self._seq = max((b[0] for b in self._batches), default=0)

    def _scan(self) -> list[tuple[int, int, dict]]:
        found: dict[tuple[int, int], dict] = {}
        for name in os.listdir(self.folder):
            m = re.fullmatch(r"(\d+)-(\d+)\.(\w+)\.json", name)
            if m:
                found.setdefault((int(m.group(1)), int(m.group(2))), {})[m.group(3)] = os.path.join(self.folder, name)
        return sorted((seq, rows, files) for (seq, rows), files in found.items())

    @property
    def rows(self) -> int:
        return sum(b[1] for b in self._batches)

    @property
    def bytes(self) -> int:
        return sum(_size(f) for b in self._batches for f in b[2].values())

    def __len__(self) -> int:
        return len(self._batches)

    def add(self, files: dict[str, str], rows: int) -> bool:
        """Move the batch's files in; False (nothing moved) when the spool is full."""
        size = sum(_size(f) for f in files.values())
        if self.bytes + size > self.max_bytes:
            return False
        self._seq += 1
        kept = {}
        for part, src in files.items():
            kept[part] = os.path.join(self.folder, f"{self._seq:012d}-{rows}.{part}.json")
            os.replace(src, kept[part]) if _same_device(src, self.folder) else _copy(src, kept[part])
        self._batches.append((self._seq, rows, kept))
        return True

    def oldest(self) -> tuple[int, dict] | None:
        """(rows, files) of the batch to retry first."""
        return (self._batches[0][1], self._batches[0][2]) if self._batches else None

    def done(self) -> None:
        """The oldest batch reached the lake: its files go."""
        _seq, _rows, files = self._batches.pop(0)
        for f in files.values():
            try:
                os.unlink(f)
            except OSError:
                pass


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _same_device(a: str, folder: str) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(folder).st_dev
    except OSError:
        return False


def _copy(src: str, dst: str) -> None:
    import shutil

    tmp = dst + ".part"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _probe_object_store(con, data_path: str) -> None:
    import duckdb

    target = data_path.rstrip("/") + "/_lynkr_probe.csv"       # overwritten at each start, never read
    try:
        con.execute(f"COPY (SELECT 1 AS ok) TO '{_sql_str(target)}' (FORMAT csv)")
    except duckdb.Error as e:
        raise LakeError(f"the data path {data_path} is not writable: {_first_line(e)}", "data_path") from None
