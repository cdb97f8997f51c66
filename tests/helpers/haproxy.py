"""Debian's HAProxy in front of `lynkr run` replicas, as a team runs a fleet (docs/scale-out.md):
round robin over HTTP, health checks on `/health/ready`, a config written for the test, started
on a free port in the foreground and stopped afterwards (`.ci/setup.d/32-haproxy.sh` installs it).

    with HAProxy([("r0", 8101), ("r1", 8102)], workdir) as lb:
        lb.url                      # http://127.0.0.1:PORT
        lb.states()                 # {"r0": "UP", "r1": "DOWN", ...} from the stats socket
        lb.wait_state("r1", "UP")

The retry policy matters for LLM traffic: a POST that reached a replica may already have been
sent to a provider (and billed), so it is never sent again. Only a connection that failed before
the request left HAProxy (`retry-on conn-failure`: refused, reset during connect) is retried, each
time on another replica (`option redispatch 1`). A replica that dies mid-request costs exactly its
in-flight requests (502 to their clients); everything after is served by the others.
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import free_port

__all__ = ["HAProxy", "haproxy_binary", "config_text"]


def haproxy_binary() -> str | None:
    """The haproxy executable: on PATH, or Debian's /usr/sbin (not on a non-root PATH)."""
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None


def config_text(port: int, servers: list[tuple[str, int]], stats_socket: str, *, host: str = "127.0.0.1") -> str:
    """The balancer's config. Timeouts are an LLM proxy's: a streamed answer may run for minutes,
    so client and server inactivity limits are long; connecting and sending headers are short."""
    lines = "\n".join(
        f"    server {name} {host}:{sport} check" for name, sport in servers)
    return f"""global
    maxconn 4096
    stats socket {stats_socket} mode 600 level admin
    stats timeout 10s

defaults
    mode http
    option abortonclose
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout http-request 10s
    timeout http-keep-alive 60s
    timeout queue 30s
    timeout check 2s
    # Never resend a request a replica may have begun (it may be at the provider, billed):
    # retry only a connection that failed before anything was sent, and on another replica.
    retries 3
    retry-on conn-failure
    option redispatch 1
    # A request is never put on an idle connection a replica may have died with: each gets its
    # own (one loopback or LAN handshake, nothing beside an LLM call).
    http-reuse never

frontend lynkr_in
    bind {host}:{port}
    default_backend lynkr

backend lynkr
    balance roundrobin
    # Ready, not merely alive: a replica that is loading, overloaded (503) or gone is taken out;
    # a degraded one (shared state unreachable, serving from local state) answers 200 and stays.
    option httpchk
    http-check send meth GET uri /health/ready
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms rise 2 fall 2
{lines}
"""


class HAProxy:
    """One haproxy process in the foreground (`-db`), its config and stats socket in `workdir`."""

    def __init__(self, servers: list[tuple[str, int]], workdir: Path, port: int | None = None):
        self.binary = haproxy_binary()
        if self.binary is None:
            raise FileNotFoundError("haproxy is not installed (run .ci/setup.d/32-haproxy.sh)")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A unix socket path is limited to 107 bytes; pytest's tmp paths can be long.
        self.stats_socket = str(self.workdir / "haproxy.sock")
        if len(self.stats_socket) > 100:
            import tempfile
            self.stats_socket = os.path.join(tempfile.mkdtemp(prefix="hap-"), "s.sock")
        self.config = self.workdir / "haproxy.cfg"
        self.config.write_text(config_text(self.port, servers, self.stats_socket))
        self.log_path = self.workdir / "haproxy.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> "HAProxy":
        check = subprocess.run([self.binary, "-c", "-q", "-f", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused {self.config}: {check.stdout}{check.stderr}")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, "-db", "-f", str(self.config)], stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited {self.proc.returncode}: {self.log()}")
            try:
                self.states()
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"haproxy did not start: {self.log()}")

    def stop(self, timeout: float = 10) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)     # hard stop: close everything now
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.proc = None

    def __enter__(self) -> "HAProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # -- the stats socket ------------------------------------------------------------------------

    def command(self, line: str) -> str:
        """One command on the admin socket (`show stat`, `disable server lynkr/r1`, …)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.stats_socket)
            s.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        return b"".join(chunks).decode()

    def stats(self) -> list[dict]:
        """`show stat` as one dict per row (frontend, servers, backend), HAProxy's column names."""
        text = self.command("show stat").lstrip("# ")
        return [row for row in csv.DictReader(text.splitlines()) if row.get("pxname")]

    def states(self) -> dict[str, str]:
        """Each server's health as HAProxy sees it: UP, DOWN, "UP 1/2" (rising), "DOWN 1/2"…"""
        return {r["svname"]: r["status"] for r in self.stats()
                if r["pxname"] == "lynkr" and r["svname"] not in ("FRONTEND", "BACKEND")}

    def served(self) -> dict[str, int]:
        """Requests each server has answered (`stot`, sessions in all) since the start."""
        return {r["svname"]: int(r["stot"] or 0) for r in self.stats()
                if r["pxname"] == "lynkr" and r["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_state(self, server: str, state: str, timeout: float = 30) -> None:
        """Until HAProxy's health checks put `server` exactly in `state` ("UP" or "DOWN")."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.states().get(server)
            if seen == state:
                return
            time.sleep(0.05)
        raise TimeoutError(f"haproxy: {server} is {seen!r}, not {state!r}, after {timeout:.0f} s: {self.log()}")
