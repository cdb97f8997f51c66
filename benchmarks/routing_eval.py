"""Routing accuracy on labelled prompts, and the score's cost on a real Claude Code body.

    python benchmarks/routing_eval.py                        # ../shared/eval/routing-dev.jsonl
    python benchmarks/routing_eval.py --set my-prompts.jsonl --show-misses
    python benchmarks/routing_eval.py --bench                # median µs of `score` on the 62 KB body

Each line of a set is {"prompt": "...", "tier": "SIMPLE|MEDIUM|COMPLEX|REASONING"}. A prompt is
sent as a one-message Anthropic request through the `score` stage with its default options.
Under-routed = a COMPLEX or REASONING prompt sent two or more tiers down.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"

from lynkr.config.loader import TIERS  # noqa: E402
from lynkr.exchange import Exchange  # noqa: E402
from lynkr.stage import BuildContext  # noqa: E402
from stages.score import Score  # noqa: E402


def build_score(options: dict | None = None) -> Score:
    ctx = BuildContext(pipeline_name="eval", pipeline_hash="", config={}, stage_id="score", dry_run=True)
    return Score({**Score.defaults(), **(options or {})}, ctx)


async def score_prompt(stage: Score, prompt: str) -> Exchange:
    x = Exchange.new("anthropic", {"model": "claude-sonnet-4-5", "max_tokens": 1024,
                                   "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]})
    x.start_stage(stage.id, stage.name)
    await stage.run(x)
    return x


def evaluate(path: Path, show_misses: bool) -> int:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    stage = build_score()
    matrix = {t: {u: 0 for u in TIERS} for t in TIERS}
    misses = []
    under = []
    for r in rows:
        x = asyncio.run(score_prompt(stage, r["prompt"]))
        got, want = x.vars["tier"], r["tier"]
        matrix[want][got] += 1
        if got != want:
            misses.append((want, got, x.vars["score"], r["prompt"], x.vars["score_parts"]))
        if want in ("COMPLEX", "REASONING") and TIERS.index(want) - TIERS.index(got) >= 2:
            under.append(r["prompt"])
    exact = sum(matrix[t][t] for t in TIERS)
    print(f"{path.name}: {len(rows)} prompts")
    print(f"exact tier: {exact}/{len(rows)} = {exact / len(rows):.1%}")
    hard = sum(1 for r in rows if r["tier"] in ("COMPLEX", "REASONING"))
    print(f"under-routed by 2+ tiers: {len(under)}/{hard} COMPLEX/REASONING prompts")
    print("\nconfusion (rows = label, columns = routed):")
    print(f"{'':>10} " + " ".join(f"{t:>9}" for t in TIERS))
    for t in TIERS:
        print(f"{t:>10} " + " ".join(f"{matrix[t][u]:>9}" for u in TIERS))
    if show_misses and misses:
        print("\nmisses:")
        for want, got, score, prompt, parts in misses:
            print(f"  {want} → {got} (score {score}): {prompt[:90]!r}\n      {parts}")
    return 0


def bench(path: Path, n: int) -> int:
    data = json.loads(path.read_text())
    body = data.get("body", data)
    stage = build_score({"session_stability": False})
    from lynkr.wire import anthropic
    canonical = anthropic.to_canonical(body)

    async def once() -> float:
        x = Exchange.new("anthropic", canonical, session="bench")
        x.start_stage(stage.id, stage.name)
        t0 = time.perf_counter()
        await stage.run(x)
        return time.perf_counter() - t0

    async def loop() -> list[float]:
        for _ in range(50):  # warm up
            await once()
        return [await once() for _ in range(n)]

    times = asyncio.run(loop())
    times.sort()
    size = len(json.dumps(body, separators=(",", ":")).encode())
    print(f"score on {path.name} (body {size / 1000:.0f} KB, {len(body.get('messages', []))} messages), {n} runs:")
    print(f"  median {statistics.median(times) * 1e6:.0f} µs, p90 {times[int(n * 0.9)] * 1e6:.0f} µs, "
          f"min {times[0] * 1e6:.0f} µs")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", type=Path,
                   default=Path(os.environ.get("LYNKR_EVAL", SHARED / "eval")) / "routing-dev.jsonl")
    p.add_argument("--show-misses", action="store_true")
    p.add_argument("--bench", nargs="?", const="default", metavar="REQUEST_JSON",
                   help="time the score stage on a request file (default: the 62 KB Claude Code fixture)")
    p.add_argument("-n", type=int, default=2000, help="runs for --bench")
    args = p.parse_args()
    if args.bench:
        path = Path(args.bench) if args.bench != "default" else (
            Path(os.environ.get("LYNKR_FIXTURES", SHARED / "fixtures")) / "claude-code/fix-negative-stock/req_004.json")
        return bench(path, args.n)
    return evaluate(args.set, args.show_misses)


if __name__ == "__main__":
    sys.exit(main())
