"""Text tool-call recovery over a labelled set (default ../shared/eval/text-tool-calls-dev.jsonl).

    python -m benchmarks.text_tool_calls [--file F] [--seeds 20] [--json]

Each case: the declared tools, the raw model text, the expected calls (name + input) and the
expected visible prose. Per format, whole answers and streams (the text cut at random points,
`--seeds` different cuttings per case):
  exact      cases whose recovered calls equal the expected ones (names, inputs, order)
  prose      cases whose visible prose equals the expected prose
  neg_calls  calls emitted on cases that expect none (target 0)
  false      calls emitted that were not expected, on any case
  undeclared calls emitted to a tool the case did not declare (target 0)
Targets (issue 31): >= 95 % exact, 0 calls on negative cases, 0 undeclared tools, both ways.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

from lynkr.toolcalls import Recoverer, extract

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "eval" / "text-tool-calls-dev.jsonl"


def streamed(text: str, tools, rng: random.Random) -> tuple[list, str]:
    r = Recoverer(tools)
    pieces, pos = [], 0
    while pos < len(text):
        n = rng.choice((1, 1, 2, 3, 5, 8, 13, 40))
        pieces += r.feed(text[pos:pos + n])
        pos += n
    pieces += r.finish()
    calls = [{"name": p[1].name, "input": p[1].input} for p in pieces if p[0] == "call"]
    return calls, "".join(p[1] for p in pieces if p[0] == "text")


def whole(text: str, tools) -> tuple[list, str]:
    x = extract(text, tools)
    return [{"name": c.name, "input": c.input} for c in x.calls], x.prose


def score(rows: dict, case: dict, calls: list, prose: str) -> None:
    expected = case["expected_calls"]
    declared = {t["name"] for t in case["tools"]}
    rows["cases"] += 1
    rows["exact"] += calls == expected
    rows["prose"] += prose.strip() == case["expected_prose"].strip()
    if not expected:
        rows["neg_calls"] += len(calls)
    rows["false"] += sum(1 for c in calls if c not in expected)
    rows["undeclared"] += sum(1 for c in calls if c["name"] not in declared)


def run(path: Path, seeds: int) -> dict:
    cases = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    table: dict = {"whole": defaultdict(lambda: defaultdict(int)), "stream": defaultdict(lambda: defaultdict(int))}
    misses: list = []
    for case in cases:
        calls, prose = whole(case["text"], case["tools"])
        for key in (case["format"], "ALL"):
            score(table["whole"][key], case, calls, prose)
        if calls != case["expected_calls"] or prose.strip() != case["expected_prose"].strip():
            misses.append(("whole", case["id"], calls, prose))
        for seed in range(seeds):
            calls, prose = streamed(case["text"], case["tools"], random.Random(seed))
            for key in (case["format"], "ALL"):
                score(table["stream"][key], case, calls, prose)
            if (calls != case["expected_calls"] or prose.strip() != case["expected_prose"].strip()) and seed == 0:
                misses.append(("stream", case["id"], calls, prose))
    return {"table": table, "misses": misses, "cases": len(cases)}


def render(res: dict, seeds: int) -> str:
    out = []
    for mode in ("whole", "stream"):
        out.append(f"\n{mode} ({'1 pass' if mode == 'whole' else f'{seeds} random cuttings per case'})")
        out.append(f"{'format':<18} {'cases':>6} {'exact':>8} {'prose':>8} {'neg_calls':>9} {'false':>6} {'undeclared':>10}")
        for fmt, r in sorted(res["table"][mode].items(), key=lambda kv: (kv[0] == "ALL", kv[0])):
            n = r["cases"]
            out.append(f"{fmt:<18} {n:>6} {100 * r['exact'] / n:>7.1f}% {100 * r['prose'] / n:>7.1f}% "
                       f"{r['neg_calls']:>9} {r['false']:>6} {r['undeclared']:>10}")
    if res["misses"]:
        out.append("\nmisses (stream: first cutting only):")
        for mode, cid, calls, prose in res["misses"]:
            out.append(f"  {mode:<6} {cid}: calls={json.dumps(calls)[:160]} prose={prose[:100]!r}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, default=DEFAULT)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.file, args.seeds)
    if args.json:
        print(json.dumps({m: {f: dict(r) for f, r in t.items()} for m, t in res["table"].items()}, indent=1))
    else:
        print(f"{res['cases']} cases from {args.file}")
        print(render(res, args.seeds))
    ok = all(t["ALL"]["exact"] >= 0.95 * t["ALL"]["cases"] and t["ALL"]["neg_calls"] == 0
             and t["ALL"]["undeclared"] == 0 for t in res["table"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
