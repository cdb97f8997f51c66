"""CPU time per request: what each path costs, thread by thread — a figure that holds on a busy
machine, where req/s does not.

    python -m benchmarks.cpu_cost                                   # bare, passthrough, default; small and cc62k
    python -m benchmarks.cpu_cost --paths lynkr-default --workloads cc62k --profile /tmp/default.txt
    python -m benchmarks.cpu_cost --paths lynkr-default --workloads cc62k --workers 2 --repeat 10   # drift

Each path runs as one process (or `--workers N`) under wrk at fixed concurrency; the CPU seconds the
process and each of its threads used during the load (from /proc) are divided by the requests
served. `--profile FILE` also records a py-spy profile (raw, collapsed stacks) of the same load;
py-spy slows the process, so compare CPU figures from runs without it. `--repeat N` measures each
cell N times in a row on the same process: how much the same work's cost moves from minute to minute.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .overhead import Proc, fake_upstream, run_wrk, start_path, workload_bodies

CLK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread, keyed `name/tid`: `main` is the event loop; Python's own threads
    (telemetry, cache store, embedding) show as `python`, uvloop's resolver pool as `libuv-worker`."""
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            st = (t / "stat").read_text()
        except OSError:
            continue
        name = "main" if t.name == str(pid) else st[st.index("(") + 1: st.rindex(")")]
        f = st.rsplit(")", 1)[1].split()
        out[f"{name}/{t.name}"] = (int(f[11]) + int(f[12])) / CLK
    return out


def measure(proc: Proc, url: str, body_file: Path, seconds: float, connections: int, tmp: Path,
            profile: str | None) -> dict:
    run_wrk(url, body_file, 3, connections, tmp)      # warm-up: pools, caches, lazy imports
    proc.settle()
    pid = proc.p.pid
    before, cpu0 = thread_cpu(pid), proc.cpu_s()
    spy = None
    if profile:
        spy = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-r", "250", "-d", str(int(seconds)), "-f", "raw",
                                "-o", profile, "--threads"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = run_wrk(url, body_file, seconds, connections, tmp)
    after, cpu1 = thread_cpu(pid), proc.cpu_s()
    if spy is not None:
        spy.wait()
    n = max(1, r["requests"])
    threads = {k: (v - before.get(k, 0.0)) / n * 1e6 for k, v in after.items()}
    # The total counts child processes too: Lynkr's DuckDB writer process (lynkr.storage.db_service).
    children = (cpu1 - cpu0) / n * 1e6 - sum(threads.values())
    if children >= 1:
        threads["child processes"] = children
    return {"rps": r["rps"], "requests": r["requests"], "cpu_us": (cpu1 - cpu0) / n * 1e6,
            "threads_us": {k: v for k, v in sorted(threads.items(), key=lambda kv: -kv[1]) if v >= 1}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", default="bare,lynkr-passthrough,lynkr-default")
    ap.add_argument("--workloads", default="small,cc62k")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--profile", help="also record a py-spy profile (one path and workload only)")
    ap.add_argument("--workers", type=int, default=1, help="lynkr run --workers")
    ap.add_argument("--repeat", type=int, default=1, help="measure each cell this many times in a row")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="lynkr-cpu-"))
    bodies = workload_bodies()
    upstream = fake_upstream()
    upstream.wait_ready()
    print(f"{'path':<22}{'workload':<12}{'req/s':>8}{'CPU µs/req':>12}   by thread (µs/req)")
    try:
        for name in args.paths.split(","):
            proc = start_path(name, upstream.url, tmp, args.workers)
            try:
                proc.wait_ready(timeout=300)
                for w in args.workloads.split(","):
                    f = tmp / f"{w}.json"
                    f.write_bytes(bodies[w])
                    for _ in range(args.repeat):
                        m = measure(proc, proc.url, f, args.seconds, args.connections, tmp, args.profile)
                        threads = ", ".join(f"{k.split('/')[0]} {v:.0f}" for k, v in m["threads_us"].items())
                        print(f"{name:<22}{w:<12}{m['rps']:>8.0f}{m['cpu_us']:>12.0f}   {threads}", flush=True)
            finally:
                proc.stop()
    finally:
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
