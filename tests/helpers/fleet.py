"""A fleet on one machine, as docs/scale-out.md draws it: N `lynkr run` replicas (separate
process trees, own ports and state folders, one pipeline file), an upstream double that knows
which replica called it (tests/helpers/fleet_upstream.py), and HAProxy round robin in front
(tests/helpers/haproxy.py). Shared state (`state:`) and fleet telemetry (`telemetry:`) are
pipeline lines the caller asks for.

    with Fleet(tmp, replicas=3, redis=URL, lake={"catalog": …, "data_path": …}) as fleet:
        fleet.lb.url                          # the balancer
        fleet.replicas[1].kill()              # SIGKILL, every process of that replica
        fleet.replicas[1].start(); fleet.replicas[1].wait_ready()
        fleet.upstream.stats()                # requests per replica

Used by tests/test_fleet.py and benchmarks/fleet.py; it drives processes only and imports no
Lynkr module, so it runs the code under test exactly as an operator does.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import free_port
from tests.helpers.haproxy import HAProxy

__all__ = ["Fleet", "Replica", "UpstreamProcess", "fleet_pipeline", "KEYS"]

ROOT = Path(__file__).resolve().parent.parent.parent

# Client keys of the fleet pipeline: `burst` has the rpm limit the fleet must share; `load` has
# one no test reaches (its counters are still kept, so the load exercises them).
KEYS = {"burst": "fleet-burst-0123456789abcdef", "load": "fleet-load-0123456789abcdef"}


def fleet_pipeline(*, redis: str | None = None, lake: dict | None = None, rpm: int = 60,
                   redis_timeout_s: float | None = None) -> str:
    """The one pipeline every replica runs: both caches, a provider call, two client keys,
    telemetry flushed every 0.2 s. What differs per replica comes from its environment
    (FLEET_UPSTREAM, FLEET_DIR), as a Kubernetes pod gets it. `redis` shares the state
    (`state: {redis: URL}`, `redis_timeout_s` its `timeout_s`), `lake` ({catalog, data_path}) the
    telemetry (`telemetry.lake`)."""
    timeout = f", timeout_s: {redis_timeout_s}" if redis_timeout_s is not None else ""
    state = f"state: {{redis: {json.dumps(redis)}{timeout}}}\n" if redis else ""
    lake_line = (f"\n  lake: {{catalog: {json.dumps(lake['catalog'])}, data_path: {json.dumps(lake['data_path'])}}}"
                 if lake else "")
    return f"""version: 1
name: fleet
# Shedding on event-loop lag is per replica and not what a fleet test is about; on a busy 2-core
# CI machine a replica's loop lags past the default 500 ms, and it would refuse requests.
server: {{shed: {{max_loop_lag_ms: 10000}}}}
providers:
  up: {{kind: anthropic, base_url: "{{{{ env.FLEET_UPSTREAM }}}}"}}
keys:
  burst: {{secret: "{KEYS['burst']}", limits: {{rpm: {rpm}}}}}
  load: {{secret: "{KEYS['load']}", limits: {{rpm: 1000000}}}}
stages:
  - {{id: exact, uses: exact_cache}}
  - {{id: cache, uses: semantic_cache, with: {{threshold: 0.87}}}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
state_dir: "{{{{ env.FLEET_DIR }}}}"
telemetry:
  path: "{{{{ env.FLEET_DIR }}}}/telemetry.duckdb"
  flush_interval_s: 0.2{lake_line}
{state}"""


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), children before grandchildren."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                kids = [int(k) for k in open(f"/proc/{p}/task/{t}/children").read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


class _Process:
    """A child process with its output in a file (a pipe nobody reads would stall it)."""

    def __init__(self, name: str, workdir: Path):
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def _spawn(self, args: list[str], env: dict) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=str(ROOT), env={**os.environ, **env}, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the process and everything it started, as a container runtime ends a pod."""
        if self.proc is None:
            return
        for pid in [self.proc.pid, *_descendants(self.proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self._close()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a graceful drain), then SIGKILL whatever is left after `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._close()

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        self.proc = None


class UpstreamProcess(_Process):
    def __init__(self, workdir: Path):
        super().__init__("upstream", workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "UpstreamProcess":
        self._spawn([sys.executable, "-m", "tests.helpers.fleet_upstream", str(self.port)], {"PYTHONPATH": str(ROOT)})
        _wait(lambda: self._probe(), f"the upstream double did not start: {self.log()}", self)
        return self

    def _probe(self) -> bool:
        try:
            return _get(self.url + "/stats", 1)[0] == 200
        except OSError:
            return False

    def stats(self) -> dict:
        return json.loads(_get(self.url + "/stats")[1])

    def _post(self, path: str) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + path, data=b"", method="POST"), timeout=5).read()

    def hold(self) -> None:
        self._post("/hold")

    def release(self) -> None:
        self._post("/release")


class Replica(_Process):
    """One `lynkr run` (one process serving requests, plus its DuckDB writer process)."""

    def __init__(self, name: str, pipeline: Path, workdir: Path, upstream_url: str, env: dict | None = None):
        super().__init__(name, workdir)
        self.pipeline = pipeline
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"FLEET_UPSTREAM": f"{upstream_url}/{name}", "FLEET_DIR": str(self.workdir), **(env or {})}

    def start(self) -> "Replica":
        self._spawn([sys.executable, "-m", "lynkr.cli", "run", str(self.pipeline), "--port", str(self.port),
                     "--no-reload", "--quiet"], self.env)
        return self

    def ready(self) -> tuple[int, dict]:
        """(status, body) of `/health/ready`; (0, {}) while nothing listens."""
        try:
            status, body = _get(self.url + "/health/ready", 2)
        except OSError:
            return 0, {}
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {}

    def wait_ready(self, timeout: float = 90) -> None:
        _wait(lambda: self.ready()[0] == 200, f"{self.name} did not become ready: {self.log()}", self, timeout)


def _wait(cond, message: str, proc: _Process | None = None, timeout: float = 60) -> None:
    """Until `cond()` holds; fails at once if `proc` exited. A bound for a hang, not a speed test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.log()}")
        if cond():
            return
        time.sleep(0.05)
    raise TimeoutError(message)


class Fleet:
    """Upstream double, `replicas` × `lynkr run` on one pipeline file, HAProxy in front."""

    def __init__(self, workdir: Path, *, replicas: int = 3, redis: str | None = None, lake: dict | None = None,
                 env: dict | None = None, rpm: int = 60, redis_timeout_s: float | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pipeline = self.workdir / "fleet.yaml"
        self.pipeline.write_text(fleet_pipeline(redis=redis, lake=lake, rpm=rpm, redis_timeout_s=redis_timeout_s))
        self.upstream = UpstreamProcess(self.workdir)
        self.replicas = [Replica(f"r{i}", self.pipeline, self.workdir / f"r{i}", self.upstream.url, env)
                         for i in range(replicas)]
        self.lb = HAProxy([(r.name, r.port) for r in self.replicas], self.workdir / "haproxy")
        self.redis_server = None      # the caller's RedisServer behind `redis`, for tests that stop it

    def start(self) -> "Fleet":
        try:
            self.upstream.start()
            for r in self.replicas:           # all load at once; each waits for its own model
                r.start()
            for r in self.replicas:
                r.wait_ready()
            self.lb.start()
            for r in self.replicas:
                self.lb.wait_state(r.name, "UP")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.lb.stop()
        for r in self.replicas:
            r.stop()
        self.upstream.stop(5)

    def __enter__(self) -> "Fleet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
