"""The semantic cache's decision on labelled pairs (the dev set and a hand-written holdout), and
the guard's rules one by one. qqp-dev (2,000 pairs) is left to benchmarks/cache_quality.py."""
import json
from pathlib import Path

import pytest

from lynkr.cache import guard
from tests.conftest import EVAL

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def embedder():
    from lynkr.kit.embed import get_embedder
    return get_embedder()


def run_set(embedder, path: Path):
    from lynkr.stages.semantic_cache import DEFAULT_THRESHOLD, decide

    pairs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    A = embedder.embed([p["a"] for p in pairs])
    B = embedder.embed([p["b"] for p in pairs])
    true_hits, false_hits = 0, []
    for p, va, vb in zip(pairs, A, B):
        hit, sim, _ = decide(embedder, p["b"], [p["a"]], threshold=DEFAULT_THRESHOLD, vectors=(vb, va.reshape(1, -1)))
        if hit is not None:
            if p["same_answer"]:
                true_hits += 1
            else:
                false_hits.append((sim, p))
    return true_hits, sum(p["same_answer"] for p in pairs), false_hits


@pytest.mark.skipif(not (EVAL / "coding-cache-dev.jsonl").exists(), reason="needs ../shared/eval")
def test_coding_dev_set_no_false_hits_and_enough_true_hits(embedder):
    true_hits, positives, false_hits = run_set(embedder, EVAL / "coding-cache-dev.jsonl")
    assert false_hits == []
    assert true_hits / positives >= 0.4


def test_holdout_no_false_hits(embedder):
    true_hits, positives, false_hits = run_set(embedder, ROOT / "benchmarks" / "data" / "cache-holdout.jsonl")
    assert false_hits == []
    assert true_hits / positives >= 0.5


@pytest.mark.parametrize("a,b,reason", [
    ("Set the retry limit to 3", "Set the retry limit to three", None),
    ("Set the retry limit to 3", "Set the retry limit to 4", "numbers"),
    ("Wait 5 s before retrying", "Wait 5 seconds before retrying", None),
    ("Why does `make build` fail?", "Why does `make test` fail?", "quoted"),
    ("What does getUserById return?", "What does getUserByName return?", "identifiers"),
    ("Open src/app/main.ts", "Open src/app/index.ts", "identifiers"),
    ('Replace "foo" with "bar"', 'Replace "foo" with "baz"', "quoted"),
    ("How do I parse JSON in Go?", "How do I parse JSON in Rust?", "tech"),
    ("Is the cache enabled?", "Is the cache not enabled?", "negation"),
    ("How do I enable strict mode?", "How do I disable strict mode?", "opposites"),
    ("Sort users by age ascending", "Sort users by age descending", "opposites"),
    ("Copy a.txt to b.txt", "Copy b.txt to a.txt", "identifiers"),
    ("Move the logger to the server", "Move the server to the logger", "direction"),
    ("What is the capital of France?", "What is the capital of Spain?", "names"),
    ("Why is the sky blue?", "How is the sky blue?", "question"),
    ("What is the difference between == and === in JavaScript?",
     "What is the difference between != and !== in JavaScript?", "identifiers"),
])
def test_guard_rules(a, b, reason):
    got = guard.check(a, b)
    assert (got is None) == (reason is None), (a, b, got)
    if reason:
        assert got == reason
    assert guard.check(b, a) == got          # symmetric
