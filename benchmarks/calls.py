"""Python calls per request on the event loop, by module: which seam costs what, in a figure that
does not move with the machine's load (a timing does; a count of calls does not).

    python -m benchmarks.calls pipelines/passthrough.yaml --workload small
    python -m benchmarks.calls pipelines/default.yaml --workload cc62k --baseline ../base@../base/.venv/bin/python

`lynkr run` (one process) is started under cProfile against the fake upstream; after a warm-up,
the profiler is switched on (SIGUSR2), N requests are sent one after another on one keep-alive
connection, and the profile is written (SIGUSR1). A call counts where it is made: a builtin (a
dict lookup, isinstance) counts for the Python function that called it. Only the event loop's
thread is profiled; the telemetry thread and the writer process are not (cpu_ab measures them).
With --baseline the same is done from another checkout and the modules are listed side by side.
"""
from __future__ import annotations

import argparse
import collections
import http.client
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .overhead import ROOT, MARK, fake_upstream, free_port, workload_bodies

_RUNNER = """
import cProfile, signal, sys
sys.argv = ["lynkr", "run", {pipeline!r}, "--port", "{port}", "--no-reload", "--log-level", "warning"]
from lynkr.cli import main
profile = cProfile.Profile()
signal.signal(signal.SIGUSR2, lambda *_: profile.enable())
signal.signal(signal.SIGUSR1, lambda *_: (profile.disable(), profile.dump_stats({out!r})))
main()
"""


def profile(tree: Path, python: str, pipeline: str, body: bytes, n: int, warm: int, out: Path, upstream: str) -> None:
    port = free_port()
    env = {**os.environ, "ANTHROPIC_UPSTREAM_URL": upstream, "MODEL_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "bench",
           "LYNKR_TELEMETRY": str(out.with_suffix(".duckdb")), "LYNKR_STATE_DIR": str(out.with_suffix(".state")),
           "LOG_LEVEL": "warning"}
    p = subprocess.Popen([python, "-c", _RUNNER.format(pipeline=pipeline, port=port, out=str(out))], cwd=tree, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = _connect(port, p)
        for i in range(warm):
            _send(conn, body, i)
        time.sleep(3)                      # past a telemetry batch
        os.kill(p.pid, signal.SIGUSR2)
        time.sleep(0.5)
        for i in range(n):
            _send(conn, body, warm + i)
        time.sleep(3)
        os.kill(p.pid, signal.SIGUSR1)
        for _ in range(100):
            if out.exists():
                break
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        p.terminate()
        p.wait(30)


def _connect(port: int, p: subprocess.Popen) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise SystemExit("lynkr run exited before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/health")
            conn.getresponse().read()
            return conn
        except OSError:
            time.sleep(0.2)
    raise SystemExit("lynkr run was not ready in 300 s")


def _send(conn: http.client.HTTPConnection, body: bytes, i: int) -> None:
    # Every request unique (the exact cache never answers), as overhead.py's wrk script makes them.
    mark = MARK.encode()
    data = body.replace(mark, f"{i:0{len(mark)}d}".encode()[-len(mark):])
    conn.request("POST", "/v1/messages", body=data, headers={"content-type": "application/json",
                                                             "anthropic-version": "2023-06-01"})
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        raise SystemExit(f"request {i} answered {r.status}")


def by_module(path: Path, n: int) -> tuple[float, dict[str, float]]:
    stats = pstats.Stats(str(path))
    calls: collections.Counter = collections.Counter()
    for (file, _line, _fn), (_cc, nc, _tt, _ct, callers) in stats.stats.items():
        if file == "~":                    # a builtin: counted for whoever called it
            for (caller, _l, _f), c in callers.items():
                calls[_module(caller)] += c[0]
        else:
            calls[_module(file)] += nc
    return stats.total_calls / n, {m: c / n for m, c in calls.items()}


def _module(file: str) -> str:
    """lynkr/... and stages/... by file; a library by its package; the standard library as one."""
    for marker in ("/lynkr/", "/stages/"):
        if marker in file:
            return marker.strip("/") + "/" + file.split(marker, 1)[1]
    if "/site-packages/" in file:
        return file.split("/site-packages/", 1)[1].split("/")[0]
    if "/lib/python3" in file or file.startswith("<frozen"):
        return "(standard library)"
    return Path(file).name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline")
    ap.add_argument("--workload", default="small")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warm", type=int, default=200)
    ap.add_argument("--baseline", default="", help="TREE[@PYTHON]: the same from another checkout, side by side")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args(argv)
    body = workload_bodies()[args.workload]
    tmp = Path(tempfile.mkdtemp(prefix="lynkr-calls-"))
    runs = {"this tree": (ROOT, sys.executable)}
    if args.baseline:
        tree, _, python = args.baseline.partition("@")
        runs["baseline"] = (Path(tree).resolve(), python or sys.executable)
    upstream = fake_upstream()
    results = {}
    try:
        upstream.wait_ready()
        for i, (name, (tree, python)) in enumerate(runs.items()):
            out = tmp / f"run{i}.prof"
            profile(tree, python, args.pipeline, body, args.requests, args.warm, out, upstream.url)
            results[name] = by_module(out, args.requests)
    finally:
        upstream.stop()
    names = list(results)
    print(f"{args.pipeline}, workload {args.workload}, {args.requests} requests on one keep-alive connection; "
          f"Python calls a request on the event loop")
    print("  total: " + ", ".join(f"{n} {results[n][0]:.0f}" for n in names))
    mods = set().union(*(r[1] for r in results.values()))
    first, last = results[names[0]][1], results[names[-1]][1]
    order = sorted(mods, key=lambda m: -abs(first.get(m, 0) - last.get(m, 0)) if len(names) > 1 else -first.get(m, 0))
    print("  " + "".join(f"{n:>12}" for n in names) + "   module")
    for m in order[: args.top]:
        print("  " + "".join(f"{results[n][1].get(m, 0):12.1f}" for n in names) + f"   {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
