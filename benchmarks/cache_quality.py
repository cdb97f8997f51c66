"""How often the semantic cache would serve a right and a wrong answer, on labelled pairs.

    python benchmarks/cache_quality.py                       # the dev sets in ../shared/eval + the holdout
    python benchmarks/cache_quality.py --threshold 0.9 --no-guard --show

For each pair the cache holds `a` and is asked `b`, through the stage's own decision function
(`stages/semantic_cache.py:decide`: similarity threshold, then the guard both ways). A hit on a
pair labelled same answer / duplicate is a true hit; on any other pair a false hit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EVAL = Path(os.environ.get("LYNKR_EVAL", ROOT.parent / "shared" / "eval"))
SETS = [
    ("coding-cache-dev", EVAL / "coding-cache-dev.jsonl", "same_answer"),
    ("qqp-dev", EVAL / "qqp-dev.jsonl", "duplicate"),
    ("cache-holdout", ROOT / "benchmarks" / "data" / "cache-holdout.jsonl", "same_answer"),
]


def embed_all(embedder, texts: list[str], batch: int = 32):
    import numpy as np

    out = [embedder.embed(texts[i:i + batch]) for i in range(0, len(texts), batch)]
    return np.concatenate(out) if out else np.zeros((0, embedder.dim), dtype=np.float32)


def evaluate(embedder, pairs: list[dict], label: str, threshold: float, use_guard: bool = True) -> dict:
    from lynkr.stages.semantic_cache import decide

    A = embed_all(embedder, [p["a"] for p in pairs])
    B = embed_all(embedder, [p["b"] for p in pairs])
    tp = fp = positives = 0
    false_hits, rejected = [], {}
    for p, va, vb in zip(pairs, A, B):
        same = bool(p[label])
        positives += same
        hit, sim, reasons = decide(embedder, p["b"], [p["a"]], threshold=threshold, use_guard=use_guard,
                                   vectors=(vb, va.reshape(1, -1)))
        for r in reasons:
            rejected[r] = rejected.get(r, 0) + 1
        if hit is None:
            continue
        if same:
            tp += 1
        else:
            fp += 1
            false_hits.append((round(sim, 3), p["a"], p["b"]))
    hits = tp + fp
    return {"pairs": len(pairs), "positives": positives, "hits": hits, "true_hits": tp, "false_hits": fp,
            "precision": tp / hits if hits else 1.0, "recall": tp / positives if positives else 0.0,
            "guard_rejections": rejected, "false_hit_examples": false_hits}


def main(argv=None) -> int:
    from lynkr.kit.embed import get_embedder
    from lynkr.stages.semantic_cache import DEFAULT_THRESHOLD

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--no-guard", action="store_true", help="similarity only, to see what the guard adds")
    ap.add_argument("--show", action="store_true", help="print every false hit")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", help="one set: coding-cache-dev, qqp-dev or cache-holdout")
    args = ap.parse_args(argv)

    embedder = get_embedder()
    results = {}
    for name, path, label in SETS:
        if args.only and name != args.only:
            continue
        if not path.exists():
            print(f"skip {name}: {path} not found", file=sys.stderr)
            continue
        pairs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        t0 = time.perf_counter()
        r = evaluate(embedder, pairs, label, args.threshold, use_guard=not args.no_guard)
        r["seconds"] = round(time.perf_counter() - t0, 1)
        results[name] = r
    if args.json:
        print(json.dumps({"threshold": args.threshold, "guard": not args.no_guard, "sets": results}, indent=2))
        return 0
    print(f"semantic_cache decision at threshold {args.threshold}, guard {'off' if args.no_guard else 'on'}")
    print(f"{'set':<18}{'pairs':>6}{'same':>6}{'hits':>6}{'true':>6}{'false':>6}{'precision':>11}{'recall':>8}")
    for name, r in results.items():
        print(f"{name:<18}{r['pairs']:>6}{r['positives']:>6}{r['hits']:>6}{r['true_hits']:>6}{r['false_hits']:>6}"
              f"{r['precision']:>10.1%}{r['recall']:>8.1%}")
    for name, r in results.items():
        if r["guard_rejections"]:
            top = ", ".join(f"{k} {v}" for k, v in sorted(r["guard_rejections"].items(), key=lambda kv: -kv[1]))
            print(f"  {name} guard rejections over the threshold: {top}")
        if args.show:
            for sim, a, b in r["false_hit_examples"]:
                print(f"  false hit {sim}: {a!r} -> {b!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
