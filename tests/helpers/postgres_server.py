"""A real PostgreSQL server (Debian's package) for one test: its own data folder in a temp dir, a
free port on 127.0.0.1, its unix socket in that temp dir, stopped and removed after.

    with postgres_server() as pg:              # or: pg = PostgresServer(); pg.start(); …; pg.cleanup()
        cfg = {"telemetry": {"lake": {"catalog": pg.catalog, "data_path": str(tmp / "lake")}}}
        pg.stop(); …; pg.start()               # the same data and port again (an outage)

initdb and postgres refuse to run as root, and CI runs as root: then every server command runs as
the `postgres` OS user (runuser), in a temp dir under /tmp that user owns. Password auth over TCP
(scram), so a wrong password is refused like in production. `.ci/setup.d/31-postgres.sh` installs
the package; `require_postgres()` fails under CI=true (skips otherwise) when it is missing.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager

import pytest

__all__ = ["PostgresServer", "postgres_server", "free_port", "postgres_bin", "require_postgres"]

USER = "lynkr"
PASSWORD = "lynkr-test-pw"
DATABASE = "lake"


def postgres_bin() -> str | None:
    """The folder holding initdb, pg_ctl and postgres (Debian keeps them out of PATH)."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(folder, "initdb")):
            return folder
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def require_postgres() -> str:
    folder = postgres_bin()
    if folder is None:
        msg = "PostgreSQL is not installed (.ci/setup.d/31-postgres.sh installs Debian's package)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self, *, port: int | None = None):
        self.bin = require_postgres()
        self.port = port or free_port()
        self.root = tempfile.mkdtemp(prefix="lynkr-pg-", dir="/tmp")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.user = USER
        self.password = PASSWORD
        self.database = DATABASE
        self._as = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._initialised = False
        self.running = False

    # -- what a test puts in its config -----------------------------------------------------
    @property
    def dsn(self) -> str:
        """libpq keywords: what DuckDB's postgres extension (and psql) take."""
        return (f"host=127.0.0.1 port={self.port} user={self.user} password={self.password} "
                f"dbname={self.database}")

    @property
    def catalog(self) -> str:
        """`telemetry.lake.catalog` for this server."""
        return "postgres:" + self.dsn

    def new_catalog(self, database: str) -> str:
        """A fresh database on this server (one lake per test), as a `catalog` string."""
        self._run(os.path.join(self.bin, "createdb"), "-h", self.root, "-p", str(self.port), "-U", self.user, database)
        return self.catalog.replace(f"dbname={self.database}", f"dbname={database}")

    # -- lifecycle --------------------------------------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self._as, *args], capture_output=True, text=True, check=check, timeout=120,
                              stdin=subprocess.DEVNULL)

    def _init(self) -> None:
        pwfile = os.path.join(self.root, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self._as:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._run(os.path.join(self.bin, "initdb"), "-D", self.data, "-U", self.user, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        os.unlink(pwfile)
        self._initialised = True

    def start(self) -> "PostgresServer":
        if not self._initialised:
            self._init()
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                "-c max_connections=200")
        r = self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log, "-o", opts,
                      "-w", "-t", "60", "start", check=False)
        if r.returncode != 0:
            raise RuntimeError(f"postgres did not start: {r.stdout}{r.stderr}\n{self.server_log()}")
        self.running = True
        if not getattr(self, "_created", False):
            self._run(os.path.join(self.bin, "createdb"), "-h", self.root, "-p", str(self.port), "-U", self.user,
                      self.database)
            self._created = True
        return self

    def stop(self) -> None:
        """A fast shutdown: clients are disconnected (what a catalog outage looks like to them)."""
        if self.running:
            self._run(os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop",
                      check=False)
            self.running = False

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def server_log(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


@contextmanager
def postgres_server():
    pg = PostgresServer()
    try:
        yield pg.start()
    finally:
        pg.cleanup()
