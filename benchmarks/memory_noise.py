"""What the `memory` stage stores from agent traffic that states no fact: the NOISE check.

    python benchmarks/memory_noise.py            # the figures docs/memory.md quotes
    python benchmarks/memory_noise.py --show     # and each stored memory

Three sets, each replayed with `lynkr replay`'s machinery through a pipeline with `memory` (the
real stage, the real embedding model, an in-memory store):

- **fixtures**: the recorded Claude Code and Codex sessions in ../shared/fixtures (real user turns:
  task requests, system reminders, environment context, tool results with file contents, grep
  output, JSON). Any memory whose text appears in a tool result or a harness block is counted
  apart: that must be 0.
- **noise**: benchmarks/data/memory_noise.jsonl, agent-session user turns written for this check
  (not taken from any memory scenario): task requests with their context, follow-ups in an agent
  loop, pasted tracebacks, logs, test and linter output, shell sessions, diffs, code, JSON, chat.
  None of them states a fact about the project, so every stored memory is a false one.
- **routing-dev**: the 40 prompts of ../shared/eval/routing-dev.jsonl (one-shot requests from
  "hi" to architecture questions), as a second, independently written set.
- **coding-cache-dev**: the distinct prompts of ../shared/eval/coding-cache-dev.jsonl and
  coding-cache-dev2.jsonl (678 one-shot developer questions and requests, pasted error messages
  among them), written for the semantic cache.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT.parent / "shared" / "fixtures"
NOISE = ROOT / "benchmarks" / "data" / "memory_noise.jsonl"
ROUTING = ROOT.parent / "shared" / "eval" / "routing-dev.jsonl"
CODING = [ROOT.parent / "shared" / "eval" / f"coding-cache-dev{n}.jsonl" for n in ("", "2")]
PIPELINE = """
version: 1
name: memory-noise
providers:
  up: {kind: anthropic, base_url: "http://127.0.0.1:9"}
stages:
  - {id: memory, uses: memory}
  - {id: call, uses: provider_call, with: {to: "up:*"}}
"""


def write_turns(folder: Path, turns: list[str], project: str = "/home/dev/noise") -> None:
    """Each turn as the first request of its own Claude Code-shaped session."""
    from memory_eval import request     # benchmarks/memory_eval.py: the same request shape

    for i, t in enumerate(turns):
        d = folder / f"s{i:03d}"
        d.mkdir(parents=True)
        (d / "req_000.json").write_text(json.dumps({"path": "/v1/messages", "headers": {}, "body": request(project, [t])}))


def stored_from(root: Path) -> list[str]:
    """The texts the memory stage stores while `root`'s sessions are replayed."""
    from lynkr.cli.replay import replay_sessions

    kept: list[str] = []

    def inspect(pipeline):
        bank = pipeline.stages["memory"].bank
        if bank is None:        # the stage failed open (no embedding model): nothing was measured
            raise SystemExit("the memory stage did not run (is LYNKR_EMBED_MODEL_PATH set? . /work/shared/env.sh)")
        kept.extend(m.text for m in bank.store.list())
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Path(tmp) / "p.yaml"
        pipe.write_text(PIPELINE)
        replay_sessions(str(root), str(pipe), inspect=inspect)
    return kept


def harness_and_tool_texts(root: Path) -> list[str]:
    """Every tool result's and harness block's text in the recorded sessions (what must never be stored)."""
    import re
    out = []

    def walk(v):
        if isinstance(v, dict):
            if v.get("type") in ("tool_result", "function_call_output"):
                out.append(json.dumps(v.get("content") or v.get("output"), ensure_ascii=False))
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            out.extend(m.group(0) for m in re.finditer(r"<([a-z]+(?:[-_][a-z]+)+)[^>]*>.*?</\1>", v, re.S))
    for f in sorted(root.rglob("req_*.json")):
        walk(json.loads(f.read_text())["body"])
    return out


def read(path: Path, key: str) -> list[str]:
    return [json.loads(line)[key] for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--show", action="store_true", help="print each stored memory")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    real = stored_from(FIXTURES)
    forbidden = harness_and_tool_texts(FIXTURES)
    from_harness = [t for t in real if any(t in f for f in forbidden)]
    human = sum(1 for f in FIXTURES.rglob("req_000.json"))
    rows = [("fixtures", f"{human} recorded sessions", real)]
    coding = list(dict.fromkeys(json.loads(line)[k] for path in CODING for line in path.read_text().splitlines()
                                if line.strip() for k in ("a", "b")))
    for name, turns in (("noise", read(NOISE, "turn")), ("routing-dev", read(ROUTING, "prompt")),
                        ("coding-cache-dev", coding)):
        with tempfile.TemporaryDirectory() as tmp:
            write_turns(Path(tmp), turns)
            rows.append((name, f"{len(turns)} user turns", stored_from(Path(tmp))))
    for name, what, kept in rows:
        print(f"{name}: {what}, {len(kept)} memories stored")
        if args.show:
            for t in kept:
                print(f"    {t}")
    print(f"stored from tool results or harness blocks: {len(from_harness)}")
    return 0 if not from_harness else 1


if __name__ == "__main__":
    sys.exit(main())
