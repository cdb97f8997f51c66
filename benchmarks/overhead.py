"""What the proxy costs: the same load against the upstream directly, a bare aiohttp+orjson
proxy, and `lynkr run` with shipped pipelines — in one run, reported as ratios.

    python -m benchmarks.overhead                       # all paths, all workloads, 10 s each
    python -m benchmarks.overhead --duration 5 --paths bare,passthrough --workloads small
    python -m benchmarks.overhead --keys 100 --paths bare,lynkr-default --workloads small,cc62k --soak ""
                                                        # + lynkr-default-keys100: the door of a team's proxy
    python -m benchmarks.overhead --paths bare,lynkr-passthrough --baseline ../base@../base/.venv/bin/python
                                                        # + lynkr-passthrough@base: an older checkout, same run

Every path gets the same number of processes serving requests, `--workers N` (default 1): the bare
proxy forks N (SO_REUSEPORT), Lynkr runs `lynkr run --workers N` (plus its one DuckDB writer
process, which serves no requests), LiteLLM runs `--num_workers N`. The ratios compare equals;
`litellm1` (LiteLLM as one process whatever N) is there only on request, labelled as such.

Load comes from wrk (Debian package `wrk`) at fixed concurrency when installed, otherwise from
an aiohttp client in a separate process. Streaming time-to-first-byte is measured by a client
that reads the first event of each of N sequential streamed requests. Results are printed and
written to benchmarks/results/overhead-latest.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The bodies live beside the test doubles (tests/test_performance.py checks them); ttfb_paired
# imports them from here.
from tests.helpers.bench_bodies import MARK, fixed, workload_bodies

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- processes -------------------------------------------------------------------------------

def is_writer(cmdline: bytes) -> bool:
    """Lynkr's DuckDB writer process: lynkr.storage.db_service (lynkr.db_service in checkouts
    before 143f93a, which --baseline may run)."""
    return b"lynkr.storage.db_service" in cmdline or b"lynkr.db_service" in cmdline


class Proc:
    def __init__(self, name: str, args: list[str], url: str, env: dict | None = None, cwd: Path | None = None):
        self.name, self.url = name, url
        # stderr to a file, not a pipe: a pipe nobody drains blocks the process once 64 KB of
        # log lines are in it, and the benchmark would measure a hung server.
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.p = subprocess.Popen(args, env={**os.environ, **(env or {})}, cwd=cwd or ROOT,
                                  stdout=subprocess.DEVNULL, stderr=self.log)

    def log_tail(self, n: int = 2000) -> str:
        return Path(self.log.name).read_bytes()[-n:].decode(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        host, port = self.url.split("//")[1].split(":")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            try:
                with socket.create_connection((host, int(port)), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(self.name)

    def rss_mb(self) -> float | None:
        """RSS of the process and its children (`--workers` forks), summed."""
        each = self.rss_each_mb()
        return sum(each) if each else None

    def rss_each_mb(self) -> list[float]:
        """RSS of each process (the parent of `--workers` is a worker too)."""
        return [mb for _role, mb in self.rss_roles()]

    def rss_roles(self) -> list[tuple[str, float]]:
        """(role, RSS MB) of each process: `worker` (serves requests) or `writer` (Lynkr's DuckDB
        writer process, lynkr.storage.db_service, which every worker hands its telemetry and cache writes)."""
        out = []
        for pid in [self.p.pid, *_children(self.p.pid)]:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out.append(("writer" if is_writer(cmd) else "worker", int(line.split()[1]) / 1024))
            except OSError:
                pass
        return out

    def processes(self) -> dict:
        """How many processes the path runs, by role: `serving` (every process but Lynkr's writer;
        a supervisor that forks workers, as LiteLLM's, is counted here too) and `writer`."""
        roles = [role for role, _mb in self.rss_roles()]
        return {"serving": roles.count("worker"), "writer": roles.count("writer")}

    def cpu_s(self) -> float:
        """CPU seconds used so far by the process and its children (`--workers`)."""
        total = 0.0
        for pid in [self.p.pid, *_children(self.p.pid)]:
            try:
                f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
        return total

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the process is idle again: work a load left behind (telemetry rows, cache
        writes) would otherwise be charged to the next cell."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_s()
            time.sleep(0.5)
            if self.cpu_s() - before < 0.025:     # under 5% of a core
                return

    def pss_mb(self) -> float | None:
        """Proportional set size, summed: forked workers share pages that RSS counts in each."""
        total, seen = 0.0, False
        for pid in [self.p.pid, *_children(self.p.pid)]:
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) / 1024
                        seen = True
            except OSError:
                pass
        return total if seen else None

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()


def fake_upstream(server: str = "raw") -> Proc:
    """tests/helpers/fake_upstream.py on a free port, started (`.wait_ready()` before use)."""
    port = free_port()
    return Proc("upstream", [sys.executable, "-m", "tests.helpers.fake_upstream", "--port", str(port), "--server", server],
                f"http://127.0.0.1:{port}")


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for c in (task / "children").read_text().split():
                out += [int(c), *_children(int(c))]
    except OSError:
        pass
    return out


# `--baseline TREE[@PYTHON]`: every lynkr-* path is also served from TREE, another checkout of
# Lynkr (`git worktree add ../base COMMIT`), as NAME@base, with its own Python (an editable install
# maps `lynkr` to one tree). "Did this change cost throughput?" is then answered by two ratios to
# the same bare proxy, under the same load, in one run.
BASELINE: dict = {}


def start_path(name: str, upstream: str, tmp: Path, workers: int) -> Proc | None:
    py = sys.executable
    port = free_port()
    root = ROOT
    if name.endswith("@base"):
        name, py, root = name.removesuffix("@base"), BASELINE["python"], BASELINE["tree"]
        tmp = tmp / "base"
        tmp.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    if name == "direct":
        return None
    if name == "bare":
        return Proc(name, [py, "-m", "benchmarks.bare_proxy", "--port", str(port), "--upstream", upstream,
                           "--workers", str(workers)], url)
    if name.startswith("lynkr-"):
        pipeline = name.removeprefix("lynkr-")
        pipeline_file = root / "pipelines" / f"{pipeline}.yaml"
        redis = ""
        if pipeline == "redis":
            redis = redis_server()
            if redis is None:
                print("lynkr-redis: redis-server not installed, skipped (.ci/setup.d/30-redis.sh)", file=sys.stderr)
                return None
        if pipeline in GENERATED:
            pipeline_file = tmp / f"{pipeline}.yaml"
            text = GENERATED[pipeline]
            pipeline_file.write_text(text() if callable(text) else text)
        env = {"ANTHROPIC_UPSTREAM_URL": upstream, "LYNKR_TELEMETRY": str(tmp / f"{name}.duckdb"),
               "LYNKR_STATE_DIR": str(tmp / f"{name}-state"), "LOG_LEVEL": "warning"}
        for k, v in PIPELINE_ENV.get(pipeline.split("-keys")[0], {}).items():
            env[k] = v.format(upstream=upstream, redis=redis)
        args = [py, "-m", "lynkr.cli", "run", str(pipeline_file), "--port", str(port),
                "--no-reload", "--log-level", "warning"]
        if workers > 1:
            args += ["--workers", str(workers)]
        return Proc(name + ("@base" if root != ROOT else ""), args, url, env, cwd=root)
    if name in ("litellm", "litellm1"):
        # `litellm1`: LiteLLM's proxy as one process whatever --workers, the way issue #9 measured its
        # 90 req/s; not an equal-process comparison unless --workers is 1.
        workers = 1 if name == "litellm1" else workers
        exe = litellm_bin()
        if exe is None:
            print("litellm: not installed, skipped (see benchmarks/README.md)", file=sys.stderr)
            return None
        cfg = tmp / "litellm.yaml"
        cfg.write_text(LITELLM_CONFIG.format(upstream=upstream))
        return Proc(name, [exe, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers",
                           str(workers)], url, {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    raise SystemExit(f"unknown path {name}")


# Processes a path needs besides itself (lynkr-redis's redis-server), stopped at the end of the run.
COMPANIONS: list[Proc] = []


def redis_server() -> str | None:
    """A redis-server on a free port for `lynkr-redis` (no persistence), started once; its URL."""
    exe = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None)
    if exe is None:
        return None
    for proc in COMPANIONS:
        if proc.name == "redis":
            return proc.url
    port = free_port()
    proc = Proc("redis", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                f"redis://127.0.0.1:{port}")
    COMPANIONS.append(proc)
    proc.wait_ready()
    return proc.url + "/0"


# LiteLLM's proxy forwarding /v1/messages to the same Anthropic-compatible fake upstream.
LITELLM_CONFIG = """
model_list:
  - model_name: "*"
    litellm_params: {{model: "anthropic/*", api_base: "{upstream}", api_key: "bench"}}
litellm_settings: {{drop_params: true, telemetry: false}}
"""


def litellm_bin() -> str | None:
    for cand in (os.environ.get("LITELLM_BIN"), str(ROOT / ".tools" / "litellm" / "bin" / "litellm"),
                 "/opt/litellm-venv/bin/litellm", shutil.which("litellm")):
        if cand and Path(cand).is_file():
            return cand
    return None


# Environment that points a shipped pipeline at the fake upstream.
PIPELINE_ENV: dict[str, dict[str, str]] = {
    "passthrough": {},
    "default": {"MODEL_PROVIDER": "anthropic", "ANTHROPIC_UPSTREAM_URL": "{upstream}", "ANTHROPIC_API_KEY": "bench"},
    "cachehit": {},
    "textcalls": {},
    "redis": {"MODEL_PROVIDER": "anthropic", "ANTHROPIC_UPSTREAM_URL": "{upstream}", "ANTHROPIC_API_KEY": "bench",
              "LYNKR_REDIS_URL": "{redis}"},
}
# `--keys N` adds the path lynkr-default-keysN: the default pipeline's environment, N keys.


# A semantic-cache hit as default.yaml serves one, minus the exact cache in front (which would
# answer a byte-identical body first): the question is embedded, looked up, guarded, replayed.
CACHEHIT_PIPELINE = """
version: 1
name: cachehit
providers:
  upstream: {kind: anthropic, base_url: "{{ env.ANTHROPIC_UPSTREAM_URL }}", api_key: bench}
stages:
  - {id: cache, uses: semantic_cache, with: {threshold: 0.87, ttl: 86400}}
  - {id: call, uses: provider_call, with: {to: "upstream:*"}}
telemetry: {path: "{{ env.LYNKR_TELEMETRY }}"}
state_dir: "{{ env.LYNKR_STATE_DIR }}"
"""

# passthrough.yaml with tool calls written as text recovered (`text_tool_calls: on`): every
# streamed text delta goes through the hold-back scanner, which is what it costs on an answer
# with no call-like text (ttfb_paired.py --body stream-tools compares it with passthrough).
TEXTCALLS_PIPELINE = """
version: 1
name: textcalls
providers:
  upstream: {kind: anthropic, base_url: "{{ env.ANTHROPIC_UPSTREAM_URL }}", api_key: bench, text_tool_calls: "on"}
stages:
  - {id: call, uses: provider_call, with: {to: "upstream:*"}}
telemetry: {path: "{{ env.LYNKR_TELEMETRY }}"}
state_dir: "{{ env.LYNKR_STATE_DIR }}"
"""


def redis_pipeline() -> str:
    """default.yaml with its state in a redis-server the benchmark starts (`state: {redis: URL}`): the
    exact and semantic caches, session floors and breakers shared through Redis. Against
    lynkr-default, what sharing state costs a request."""
    text = (ROOT / "pipelines" / "default.yaml").read_text(encoding="utf-8")
    return text.replace("name: default", "name: redis", 1) + '\nstate: {redis: "{{ env.LYNKR_REDIS_URL }}"}\n'


# Pipelines the benchmark writes itself, by path name (`lynkr-NAME`).
GENERATED = {"cachehit": CACHEHIT_PIPELINE, "textcalls": TEXTCALLS_PIPELINE, "redis": redis_pipeline}

# Limits no benchmark reaches: every request is admitted, and counted in every window and budget.
_NEVER = "{rpm: 1000000000, tpm: 1000000000000, usd_per_day: 1000000, usd_per_month: 10000000, max_concurrent: 1000000}"


def keyed_default(n: int) -> str:
    """pipelines/default.yaml with `n` client keys (docs/teams.md), limits on each of them and on
    their ten teams, the load's key (`x-api-key: bench`) the first: what the door of a team's proxy
    costs a request (the key looked up, then admitted and released against the host's counters in
    the writer process), against the same pipeline without keys (`lynkr-default`)."""
    import hashlib

    text = (ROOT / "pipelines" / "default.yaml").read_text().replace("\nname: default\n", f"\nname: default-keys{n}\n", 1)
    lines = ["", "keys:"]
    for i in range(n):
        digest = hashlib.sha256(("bench" if i == 0 else f"bench-key-{i:04d}").encode()).hexdigest()
        lines.append(f'  k{i}: {{secret_sha256: "{digest}", team: t{i % 10}, limits: {_NEVER}}}')
    lines.append("teams:")
    lines += [f"  t{t}: {{limits: {_NEVER}}}" for t in range(min(n, 10))]
    return text + "\n".join(lines) + "\n"


# -- load ------------------------------------------------------------------------------------

WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "bench"
local f = io.open("%s", "rb"); local body = f:read("*a"); f:close()
local at = body:find("%s", 1, true)
if at then
  -- A unique body per request: two string concatenations, cheap next to the request itself.
  local pre, post, n = body:sub(1, at - 1) .. "%s-", body:sub(at + %d), 0
  request = function() n = n + 1; return wrk.format(nil, nil, nil, pre .. n .. post) end
else
  wrk.body = body
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests":%%d,"duration_us":%%d,"errors":%%d,"non2xx":%%d,"p50_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(url: str, body_file: Path, duration: float, connections: int, tmp: Path) -> dict:
    lua = tmp / "post.lua"
    # A nonce per run, so a measurement never repeats the warm-up's bodies.
    lua.write_text(WRK_LUA % (body_file, MARK, os.urandom(4).hex(), len(MARK)))
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(duration))}s", "-s", str(lua), url + "/v1/messages"],
                         capture_output=True, text=True, timeout=duration + 60)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(out.stdout + out.stderr)
    r = json.loads(line[7:])
    return {"rps": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "errors": r["errors"] + r["non2xx"], "requests": r["requests"]}


def run_aiohttp_load(url: str, body_file: Path, duration: float, connections: int) -> dict:
    code = f"""
import asyncio, time, json, aiohttp
import os, itertools
body = open({str(body_file)!r}, 'rb').read()
nonce = os.urandom(4).hex().encode(); counter = itertools.count()
lat = []; errors = 0
async def w(s, end):
    global errors
    while time.perf_counter() < end:
        t = time.perf_counter()
        data = body.replace({MARK.encode()!r}, nonce + b'-' + str(next(counter)).encode())
        try:
            async with s.post({url!r} + '/v1/messages', data=data, headers={{'content-type': 'application/json', 'x-api-key': 'bench'}}) as r:
                await r.read()
                if r.status != 200: errors += 1
        except Exception: errors += 1
        lat.append(time.perf_counter() - t)
async def main():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit={connections})) as s:
        t0 = time.perf_counter(); end = t0 + {duration}
        await asyncio.gather(*(w(s, end) for _ in range({connections})))
        el = time.perf_counter() - t0
    lat.sort()
    print(json.dumps({{'rps': len(lat)/el, 'p50_ms': lat[len(lat)//2]*1000, 'p99_ms': lat[int(len(lat)*0.99)]*1000,
                      'errors': errors, 'requests': len(lat)}}))
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=duration + 120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_ttfb(url: str, body: bytes, n: int) -> dict:
    """Sequential streamed requests; time to the first body byte and to the end of the stream."""
    code = f"""
import asyncio, time, json, aiohttp
import os
body = {body!r}
nonce = os.urandom(4).hex().encode()
async def main():
    ttfb, total = [], []
    async with aiohttp.ClientSession() as s:
        for i in range({n} + 20):
            data = body.replace({MARK.encode()!r}, nonce + b'-' + str(i).encode())
            t = time.perf_counter()
            async with s.post({url!r} + '/v1/messages', data=data, headers={{'content-type': 'application/json', 'x-api-key': 'bench'}}) as r:
                await r.content.readany()
                t1 = time.perf_counter()
                await r.read()
                t2 = time.perf_counter()
            if i >= 20:
                ttfb.append((t1 - t) * 1000); total.append((t2 - t) * 1000)
    ttfb.sort(); total.sort()
    print(json.dumps({{'ttfb_p50_ms': ttfb[len(ttfb)//2], 'ttfb_p99_ms': ttfb[int(len(ttfb)*0.99)],
                      'stream_p50_ms': total[len(total)//2]}}))
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def interleaved(cells: list[tuple[str, str, Path, "Proc | None"]], rounds: int, duration: float,
                load) -> dict[str, dict]:
    """Each path loaded in turn, `rounds` times over, the order rotated every round: a slow drift
    of the machine (other tenants, CPU frequency) then lands on every path alike, and ratios are
    taken between cells of the same round. `cells` are (name, url, body file, process or None for
    the upstream itself). Returns each path's median round, with every round's req/s in `rounds`
    and all requests it served (warm-up included) in `served`."""
    served = {name: load(url, body, 2)["requests"] for name, url, body, _p in cells}   # pools, caches, lazy imports
    per: dict[str, list[dict]] = {name: [] for name, *_ in cells}
    for r in range(rounds):
        for name, url, body, _p in cells[r % len(cells):] + cells[: r % len(cells)]:
            for *_x, proc in cells:    # what the last cell left behind (telemetry, cache writes)
                if proc is not None:
                    proc.settle()
            per[name].append(load(url, body, duration))
            served[name] += per[name][-1]["requests"]
    out = {}
    for name, runs in per.items():
        mid = sorted(runs, key=lambda x: x["rps"])[len(runs) // 2]
        out[name] = {**mid, "rounds": [round(x["rps"], 1) for x in runs], "served": served[name]}
    return out


def ratio(r: dict, base: dict) -> float:
    """r's req/s over base's: the median of the per-round ratios when both ran the same rounds."""
    a, b = r.get("rounds") or [], base.get("rounds") or []
    if a and len(a) == len(b) and all(b):
        return statistics.median([x / y for x, y in zip(a, b)])
    return r["rps"] / base["rps"] if base["rps"] else float("nan")     # nan: the base served nothing


IDLE_AFTER_S = 3.0


def soak(proc: "Proc", load, f: Path, body: bytes, served: int, marks: list[int]) -> dict:
    """RSS and PSS after N requests served (counted from the process's start), for each N in marks.
    Each is read once the process is idle again, the state the figures after the cells are read in;
    `busy_each_mb` is each process's RSS read straight after the load, with requests in flight and
    the last second's telemetry still held (a later mark used to be read that way, and compared a
    busy process with an idle one)."""
    f.write_bytes(body)
    out = {}
    for mark in marks:
        while served < mark:
            served += load(f, 5)["requests"]
        busy = proc.rss_each_mb()
        proc.settle()
        # Past the telemetry writer's last batch (flush_interval_s, 2 s) and the trim after it, which
        # hand the freed heap back: settle() alone can return while they are still to come.
        time.sleep(IDLE_AFTER_S)
        out[str(mark)] = {"served": served, "rss_mb": proc.rss_mb(), "rss_each_mb": proc.rss_each_mb(),
                          "rss_roles": proc.rss_roles(), "pss_mb": proc.pss_mb(), "busy_each_mb": busy}
    return out


# -- report ----------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds a cell, each round")
    ap.add_argument("--rounds", type=int, default=5,
                    help="each path loaded this many times, interleaved with the others; medians are reported")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--paths", default="direct,bare,lynkr-passthrough,lynkr-default,lynkr-redis,lynkr-cachehit,litellm",
                    help="also: litellm1 (LiteLLM as one process whatever --workers); lynkr-redis is "
                         "default.yaml with `state: {redis: URL}` on a redis-server the run starts")
    ap.add_argument("--workloads", default="small,cc62k,cc62k-loop,stream")
    ap.add_argument("--ttfb-requests", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1,
                    help="processes serving requests, for every path alike: the bare proxy's --workers, "
                         "lynkr run --workers, LiteLLM's --num_workers")
    ap.add_argument("--soak", default="10000,50000",
                    help="after its cells, keep loading these paths (small requests) and record RSS once the "
                         "process has served each of these request counts; empty to skip")
    ap.add_argument("--soak-paths", default="lynkr-default")
    ap.add_argument("--soak-workload", default="cc62k",
                    help="the body of the soak (cc62k: every request unique, the embedder loaded but the "
                         "semantic cache skips tool loops; small: an embedding per request, far slower)")
    ap.add_argument("--load", choices=["auto", "wrk", "aiohttp"], default="auto")
    ap.add_argument("--upstream-server", choices=["raw", "aiohttp"], default="raw",
                    help="the fake upstream: HTTP on asyncio's Protocol (~20 µs a request) or an aiohttp app "
                         "(100–250 µs a request, the CPU a proxy worker would use; runs before 2026-11-27)")
    ap.add_argument("--keys", type=int, default=0,
                    help="also serve lynkr-default-keysN: the default pipeline with N client keys, limits on "
                         "each and on their teams, the load presenting one of them (docs/teams.md); compare "
                         "its ratio to bare with lynkr-default's, same processes, one run")
    ap.add_argument("--baseline", default="",
                    help="TREE[@PYTHON]: also serve every lynkr-* path from TREE, another checkout (its own "
                         "venv's Python), as NAME@base: before/after ratios to bare in one run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "overhead-latest.json"))
    args = ap.parse_args(argv)
    if args.keys:
        GENERATED[f"default-keys{args.keys}"] = keyed_default(args.keys)
        args.paths = ",".join(dict.fromkeys(args.paths.split(",") + ["lynkr-default", f"lynkr-default-keys{args.keys}"]))

    if args.baseline:
        tree, _, python = args.baseline.partition("@")
        BASELINE.update(tree=Path(tree).resolve(), python=python or sys.executable)
        lynkr_paths = [p for p in args.paths.split(",") if p.startswith("lynkr-") and p.removeprefix("lynkr-") not in GENERATED]
        args.paths = ",".join(args.paths.split(",") + [f"{p}@base" for p in lynkr_paths])

    use_wrk = args.load == "wrk" or (args.load == "auto" and shutil.which("wrk"))
    tmp = Path(tempfile.mkdtemp(prefix="lynkr-bench-"))
    bodies = workload_bodies()
    workloads = [w for w in args.workloads.split(",") if w in bodies]
    paths = args.paths.split(",")
    soak_paths = set(filter(None, args.soak_paths.split(",")))
    marks = sorted(int(m) for m in args.soak.split(",") if m.strip())

    upstream = fake_upstream(args.upstream_server)
    upstream.wait_ready()
    results: dict = {"load": "wrk" if use_wrk else "aiohttp", "upstream_server": args.upstream_server,
                     "connections": args.connections,
                     "duration_s": args.duration, "rounds": args.rounds, "workers": args.workers, "paths": {},
                     "skipped": {}}
    procs: dict[str, Proc | None] = {}
    try:
        # Every path is up for the whole run and only the loaded one works: cells of one workload
        # are interleaved round by round (see interleaved()).
        for name in paths:
            proc = start_path(name, upstream.url, tmp, args.workers)
            if proc is not None or name == "direct":
                procs[name] = proc
        for name, proc in list(procs.items()):
            if proc is None:
                continue
            try:
                proc.wait_ready(timeout=300)
            except TimeoutError:
                if not name.startswith("litellm"):
                    raise
                # uvicorn's supervisor restarts a worker that has not answered its health check
                # within 5 s, and importing LiteLLM can take longer on a loaded machine: the workers
                # then die and restart for ever. LiteLLM's CLI has no option for that timeout.
                proc.stop()
                del procs[name]
                results["skipped"][name] = (f"not ready after 300 s with --num_workers {args.workers} "
                                            f"(log: {proc.log.name})")
                print(f"{name}: {results['skipped'][name]}; skipped", file=sys.stderr)
        results["processes"] = {name: proc.processes() for name, proc in procs.items() if proc is not None}
        url = {name: upstream.url if proc is None else proc.url for name, proc in procs.items()}
        load = (lambda u, f, d: run_wrk(u, f, d, args.connections, tmp)) if use_wrk else \
               (lambda u, f, d: run_aiohttp_load(u, f, d, args.connections))
        res: dict[str, dict] = {name: {} for name in procs}
        served = dict.fromkeys(procs, 0)
        for w in workloads:
            if w == "stream":
                continue
            cells = []
            for name, proc in procs.items():
                if name == "lynkr-cachehit" and w.startswith("cc62k"):
                    continue     # a tool loop: the semantic cache never answers it (docs/cache.md)
                f = tmp / f"{name}-{w}.json"
                f.write_bytes(fixed(bodies[w]) if name == "lynkr-cachehit" else bodies[w])
                cells.append((name, url[name], f, proc))
            for name, r in interleaved(cells, args.rounds, args.duration, load).items():
                res[name][w] = r
                served[name] += r["served"]
            print(f"{w}: " + ", ".join(f"{n} {res[n][w]['rps']:.0f} req/s" for n, *_x in cells), file=sys.stderr)
        if "stream" in workloads:
            for name, proc in procs.items():
                if proc is not None:
                    proc.settle()
                body = fixed(bodies["stream"]) if name == "lynkr-cachehit" else bodies["stream"]
                res[name]["stream"] = measure_ttfb(url[name], body, args.ttfb_requests)
                served[name] += args.ttfb_requests + 20
        for name, proc in procs.items():
            r = results["paths"][name] = res[name]
            if proc is not None:
                r.update(rss_mb=proc.rss_mb(), rss_each_mb=proc.rss_each_mb(), rss_roles=proc.rss_roles(),
                         pss_mb=proc.pss_mb(), served=served[name])
            print(f"{name}: {json.dumps(r)}", file=sys.stderr)
        for name, proc in procs.items():
            if proc is None or name not in soak_paths or not marks or args.soak_workload not in bodies:
                continue
            for other in procs.values():      # the soak runs alone
                if other is not None and other is not proc:
                    other.stop()
            res[name]["soak"] = soak(proc, lambda f, d, u=url[name]: load(u, f, d), tmp / f"{name}-soak.json",
                                     bodies[args.soak_workload], served[name], marks)
    finally:
        for proc in procs.values():
            if proc is not None:
                proc.stop()
        for proc in COMPANIONS:
            proc.stop()
        upstream.stop()
    print_table(results, workloads)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


def print_table(results: dict, workloads: list[str]) -> None:
    paths = results["paths"]
    print(f"\nload: {results['load']}, {results['connections']} connections, {results['duration_s']} s per cell, "
          f"{results.get('rounds', 1)} rounds (median; ratios: median of the rounds' ratios), "
          f"workers: {results['workers']} for every path, fake upstream: {results.get('upstream_server', 'aiohttp')}")
    counted = results.get("processes") or {}
    if counted:
        print("processes counted once ready: " + ", ".join(
            f"{n} {c['serving']}" + (f" + writer {c['writer']}" if c["writer"] else "")
            + (" (one process whatever --workers)" if n == "litellm1" else "") for n, c in counted.items())
            + "  (a supervisor that only forks workers, as LiteLLM's with --num_workers > 1, counts as serving)")
    for name, why in (results.get("skipped") or {}).items():
        print(f"{name}: {why}; skipped")
    print()
    both = "litellm" in paths and "litellm1" in paths
    print(f"{'path':<22}{'workload':<12}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs bare':>9}{'vs litellm':>12}"
          + (f"{'vs litellm1':>13}" if both else ""))
    for w in [w for w in workloads if w != "stream"]:
        bare = paths.get("bare", {}).get(w)
        lite = paths.get("litellm", {}).get(w) or paths.get("litellm1", {}).get(w)
        lite1 = paths.get("litellm1", {}).get(w)
        for name, res in paths.items():
            r = res.get(w)
            if not r:
                continue
            vs_bare = f"{ratio(r, bare):.0%}" if bare else ""
            vs_lite = f"{ratio(r, lite):.1f}x" if lite else ""
            vs_lite1 = f"{ratio(r, lite1):.1f}x" if lite1 and "litellm" in paths else ""
            print(f"{name:<22}{w:<12}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}"
                  f"{vs_bare:>9}{vs_lite:>12}{vs_lite1:>13}")
    for w in [w for w in workloads if w != "stream"]:
        runs = [f"{n} " + "/".join(f"{x:.0f}" for x in res[w]["rounds"]) for n, res in paths.items()
                if res.get(w, {}).get("rounds")]
        if runs:
            print(f"  req/s by round, {w}: " + ", ".join(runs))
    if "stream" in workloads:
        print(f"\n{'path':<22}{'TTFB p50 ms':>12}{'TTFB p99 ms':>12}{'stream p50 ms':>15}   added TTFB vs bare")
        bare = paths.get("bare", {}).get("stream", {}).get("ttfb_p50_ms")
        for name, res in paths.items():
            r = res.get("stream")
            if not r:
                continue
            added = f"{r['ttfb_p50_ms'] - bare:+.2f} ms" if bare is not None else ""
            print(f"{name:<22}{r['ttfb_p50_ms']:>12.2f}{r['ttfb_p99_ms']:>12.2f}{r['stream_p50_ms']:>15.2f}   {added}")
    rss = {n: r for n, r in paths.items() if r.get("rss_mb")}
    if rss:
        print("\nRSS (PSS) after the cells: " + ", ".join(
            f"{n} {r['rss_mb']:.0f} ({r.get('pss_mb') or 0:.0f}) MB after {r.get('served', 0)} requests" for n, r in rss.items()))
        print("RSS of the largest process: " + ", ".join(
            f"{n} {max(r.get('rss_each_mb') or [r['rss_mb']]):.0f} MB" for n, r in rss.items()))
        print("RSS by process: " + "; ".join(f"{n} {_roles(r)}" for n, r in rss.items() if r.get("rss_roles")))
    for n, r in paths.items():
        if r.get("soak"):
            print(f"RSS (PSS) of {n} by requests served, once idle: " + "; ".join(
                f"{m['served']}: {m['rss_mb']:.0f} ({m.get('pss_mb') or 0:.0f}) MB = {_roles(m)}" for m in r["soak"].values()))
            print("  read straight after the load (processes in start order): " + "; ".join(
                f"{m['served']}: " + "/".join(f"{mb:.0f}" for mb in m.get("busy_each_mb") or ()) + " MB"
                for m in r["soak"].values()))


def _roles(r: dict) -> str:
    roles = r.get("rss_roles") or [("process", mb) for mb in r.get("rss_each_mb") or ()]
    workers = [f"{mb:.0f}" for role, mb in roles if role != "writer"]
    writer = [f"{mb:.0f}" for role, mb in roles if role == "writer"]
    return f"worker{'s' if len(workers) > 1 else ''} {'/'.join(workers)} MB" + (f", writer {writer[0]} MB" if writer else "")


if __name__ == "__main__":
    sys.exit(main())
