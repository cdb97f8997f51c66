"""CPU per request of Lynkr variants, measured interleaved: every variant is up at once and each
round loads them in turn (the order rotated), so a slow minute of the machine lands on all alike.

    python -m benchmarks.cpu_ab pipelines/default.yaml ../base::pipelines/default.yaml
    python -m benchmarks.cpu_ab --workload cc62k pipelines/default.yaml pipelines/default.yaml@WL=cc62k-loop

A variant is `[TREE::]PIPELINE[@NAME=VALUE...]`: TREE is another checkout of Lynkr to run from (a
`git worktree add ../base <commit>` of the commit to compare against), NAME=VALUE an environment
variable for its processes (`WL=` picks its workload instead, `PY=` the Python to run it with: the
other tree's own venv, since an editable install maps `lynkr.stages` to one tree). Each runs `lynkr run --workers N`
against one fake upstream; CPU is summed over the workers and the writer process, from /proc.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .overhead import ROOT, Proc, _children, fake_upstream, free_port, is_writer, run_wrk, workload_bodies

CLK = os.sysconf("SC_CLK_TCK")


class Variant(Proc):
    def __init__(self, spec: str, i: int, upstream: str, tmp: Path, workers: int, workload: str):
        tree, _, rest = spec.rpartition("::")
        pipeline, *pairs = rest.split("@")
        env = dict(p.split("=", 1) for p in pairs)
        self.workload = env.pop("WL", workload)
        python = env.pop("PY", sys.executable)
        self.spec = spec
        port = free_port()
        env.update({"ANTHROPIC_UPSTREAM_URL": upstream, "MODEL_PROVIDER": env.get("MODEL_PROVIDER", "anthropic"),
                    "ANTHROPIC_API_KEY": "bench", "LYNKR_TELEMETRY": str(tmp / f"t{i}.duckdb"),
                    "LYNKR_STATE_DIR": str(tmp / f"s{i}"), "LOG_LEVEL": "warning"})
        self.name, self.url = f"v{i}", f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-v{i}-", suffix=".log", delete=False)
        # From the variant's own tree: `python -m` puts its directory first on sys.path.
        self.p = subprocess.Popen([python, "-m", "lynkr.cli", "run", pipeline, "--port", str(port),
                                   "--no-reload", "--log-level", "warning", "--workers", str(workers)],
                                  env={**os.environ, **env}, cwd=tree or ROOT,
                                  stdout=subprocess.DEVNULL, stderr=self.log)

    def writer_cpu_s(self) -> float:
        total = 0.0
        for pid in _children(self.p.pid):
            try:
                if is_writer(Path(f"/proc/{pid}/cmdline").read_bytes()):
                    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    total += (int(f[11]) + int(f[12])) / CLK
            except OSError:
                pass
        return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--workload", default="cc62k")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="lynkr-ab-"))
    bodies = workload_bodies()
    upstream = fake_upstream()
    variants: list[Variant] = []
    try:
        upstream.wait_ready()
        for i, spec in enumerate(args.variants):
            variants.append(Variant(spec, i, upstream.url, tmp, args.workers, args.workload))
        files = {}
        for v in variants:
            v.wait_ready(timeout=300)
            files[v.spec] = tmp / f"{v.name}.json"
            files[v.spec].write_bytes(bodies[v.workload])
            run_wrk(v.url, files[v.spec], 2, args.connections, tmp)          # warm-up
        cpu = {v.spec: [] for v in variants}
        writer = {v.spec: [] for v in variants}
        rps = {v.spec: [] for v in variants}
        for r in range(args.rounds):
            for v in variants[r % len(variants):] + variants[: r % len(variants)]:
                v.settle()
                c0, w0 = v.cpu_s(), v.writer_cpu_s()
                out = run_wrk(v.url, files[v.spec], args.seconds, args.connections, tmp)
                time.sleep(2.5)     # past the last telemetry batch (flush_interval_s)
                n = max(1, out["requests"])
                cpu[v.spec].append(1e6 * (v.cpu_s() - c0) / n)
                writer[v.spec].append(1e6 * (v.writer_cpu_s() - w0) / n)
                rps[v.spec].append(out["rps"])
        print(f"{args.rounds} rounds of {args.seconds:g} s, --workers {args.workers}, CPU µs a request "
              f"(workers + writer process; median, then each round)")
        for v in variants:
            print(f"{v.spec}  [{v.workload}]\n  cpu {statistics.median(cpu[v.spec]):6.0f}  "
                  f"({' '.join(f'{x:.0f}' for x in cpu[v.spec])})  req/s {statistics.median(rps[v.spec]):.0f}  "
                  f"writer {statistics.median(writer[v.spec]):.0f}")
    finally:
        for v in variants:
            v.stop()
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
