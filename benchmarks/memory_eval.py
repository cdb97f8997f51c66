"""Does long-term memory help, and does it stay out of the way? A scripted scenario through the
real `memory` stage.

    python benchmarks/memory_eval.py                 # the scenario below, the figures docs/memory.md quotes
    python benchmarks/memory_eval.py --min-relevance 0.4 --show
    python benchmarks/memory_eval.py --scenario fresh3   # benchmarks/data/memory_fresh3.py
    python benchmarks/memory_eval.py --scenario fresh11 --bar-alone   # min_relevance for every turn

Project A (`/home/dev/shop-api`): sessions 1 and 2 state 20 facts (one per user turn, Claude
Code-shaped requests); session 3 asks 20 questions, half of which need a stored fact and half
not. Project B (`/home/dev/billing-service`) states its own facts in between and asks its own
questions; neither project's memories may ever reach the other.

The requests go through a pipeline with `memory` (the stage as built for `lynkr replay`: the
real embedding model, an in-memory store, no upstream), turn by turn, each turn re-sending the
conversation so far. Measured:

- recall@5: a needed fact is in the memory the request carries upstream for that question
  (injected in that turn, or in an earlier turn of the session and put back);
- false injections: questions needing no fact that got a memory block;
- leaks: any memory of the other project in a request;
- prefix violations: `lynkr replay`'s check between consecutive turns of each session (turn n+1
  must repeat turn n's upstream bytes);
- retrieval latency in-process, p50 and p95: ranking a project's memories for a question
  (`MemoryStore.search`, given the question's vector), and recall including the question's
  embedding (`MemoryBank.recall`).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

A, B = "/home/dev/shop-api", "/home/dev/billing-service"

FACTS_A = [   # sessions 1 and 2
    "This project uses PostgreSQL 15 as its main database.",
    "We decided to use FastAPI for the HTTP layer.",
    "The API runs on port 8420 in development.",
    "Remember that the staging server is staging.shop.internal.",
    "I prefer pytest fixtures over setUp methods.",
    "Our CI runs on GitLab CI with a 20 minute timeout.",
    "Note: the payments module lives in src/shop/payments.",
    "We always use UUIDv7 for primary keys.",
    "The Redis cache is configured with a TTL of 900 seconds.",
    "Let's use ruff for linting and formatting.",
    "The frontend is a React app in the web/ folder.",
    "Our product owner is Maria Lopez.",
    "We decided that order numbers start with ORD- followed by six digits.",
    "Database migrations are stored in db/migrations and managed by Alembic.",
    "Remember that the nightly export job runs at 02:30 UTC.",
    "We never use print for logging; we use structlog.",
    "The default branch is trunk, not main.",
    "Invoices are generated as PDF with WeasyPrint.",
    "Note: the rate limit for the public API is 100 requests per minute.",
    "Our Docker images are based on python:3.12-slim.",
]
NEEDS_FACT = [   # session 3: (question, the fact it needs, by its index in FACTS_A)
    ("Which database should I write this query for?", 0),
    ("What port do I hit to test the API locally?", 2),
    ("What's the hostname of the staging server?", 3),
    ("Where is the payments code?", 6),
    ("What kind of IDs should the new table's primary key use?", 7),
    ("Where do I put a new database migration?", 13),
    ("When does the nightly export run?", 14),
    ("How should I log errors in the new service?", 15),
    ("Which branch should I open the pull request against?", 16),
    ("How many requests per minute does the public API allow?", 18),
]
NO_FACT = [
    "How do I reverse a list in Python?",
    "Explain the difference between a process and a thread.",
    "Write a regex that matches an email address.",
    "What does the HTTP status code 418 mean?",
    "How do I undo the last git commit but keep the changes?",
    "Convert this loop into a list comprehension: for x in xs: out.append(x * 2)",
    "What is the time complexity of binary search?",
    "Give me a bash one-liner to count lines in all .py files.",
    "What's a good name for a function that merges two sorted lists?",
    "How do I center a div with CSS?",
]
FACTS_B = [
    "This project uses MySQL 8 for the ledger database.",
    "The billing API runs on port 9911.",
    "Remember that the staging server is billing-stage.corp.example.",
    "Note: the payments reconciliation code lives in ledger/reconcile.",
    "The default branch is release, never trunk.",
    "We decided that invoice numbers start with INV-2026.",
]
QUESTIONS_B = ["Which database does the ledger use?", "What's the staging host for billing?",
               "Which branch do releases come from?"]

PIPELINE = """
version: 1
name: memory-eval
providers:
  up: {{kind: anthropic, base_url: "http://127.0.0.1:9"}}
stages:
  - {{id: memory, uses: memory, with: {{min_relevance: {min_relevance}, retrieval_limit: {limit}, adaptive_bar: {adaptive}}}}}
  - {{id: call, uses: provider_call, with: {{to: "up:*"}}}}
"""
TOOLS = [{"name": "Bash", "description": "run a command", "input_schema": {"type": "object", "properties": {}}}]


def request(project: str, turns: list[str]) -> dict:
    """A Claude Code-shaped request: the turns so far, each answered 'OK.', the newest cache-marked."""
    messages = []
    for i, t in enumerate(turns):
        if i:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": "OK."}]})
        messages.append({"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nUse the context.\n</system-reminder>"}, {"type": "text", "text": t}]})
    messages[-1]["content"][-1] = {**messages[-1]["content"][-1], "cache_control": {"type": "ephemeral"}}
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": TOOLS, "messages": messages,
            "system": [{"type": "text", "text": f"You are Claude Code.\n<env>\nPrimary working directory: {project}\n</env>"}]}


def memory_text(req: dict) -> str:
    return "\n".join(b["text"] for m in req["messages"] if isinstance(m["content"], list) for b in m["content"]
                     if b.get("type") == "text" and b["text"].startswith("<lynkr-memory>"))


def new_block(req: dict) -> bool:
    return any(b.get("type") == "text" and b["text"].startswith("<lynkr-memory>") for b in req["messages"][-1]["content"])


async def session(pipeline, project: str, name: str, turns: list[str]) -> list[dict]:
    """Each turn through the pipeline as the client would send it; the upstream requests."""
    from lynkr.exchange import Exchange

    sent = []
    for k in range(1, len(turns) + 1):
        body = request(project, turns[:k])
        x = Exchange.new("anthropic", body, original=body, session=name)
        await pipeline.explain(x)
        sent.append(x.request)
    return sent


def distinctive(fact: str) -> str:
    """The part of a fact that only it says (what a leak or a recall is judged by)."""
    from lynkr.memory.extract import extract
    found = extract(fact)
    return found[0].text if found else fact     # never stored: it can only be missed


def scenario(name: str):
    """The scenario's projects, facts and questions: "dev" (this file) or "fresh" … (benchmarks/data/
    memory_fresh*.py). The extractor and `min_relevance` were developed on dev … fresh4; fresh5 …
    fresh16 were written by someone who read nothing of the project, kept unread until run: fresh5 and
    fresh6 measured the extractor, fresh7 and fresh8 checked the question rules (question.py), fresh9
    … fresh16 tested them, each run once before anything was changed for it (docs/memory.md)."""
    if name == "dev":
        return sys.modules[__name__]
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"memory_{name}", ROOT / "benchmarks" / "data" / f"memory_{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def run(min_relevance: float, limit: int, show: bool, sc=None, adaptive: bool = True) -> dict:
    from lynkr.cli.replay import prefix_violations
    from lynkr.config import load_config
    from lynkr.engine.pipeline import build_pipeline
    from lynkr.kit.tokens import count_text

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memory-eval.yaml"
        path.write_text(PIPELINE.format(min_relevance=min_relevance, limit=limit, adaptive=str(adaptive).lower()))
        pipeline = build_pipeline(load_config(path), dry_run=True)
    sc = sc or scenario("dev")
    sessions = {}
    try:
        sessions["A1"] = await session(pipeline, sc.A, "A1", sc.FACTS_A[:10])
        sessions["B1"] = await session(pipeline, sc.B, "B1", sc.FACTS_B)
        sessions["A2"] = await session(pipeline, sc.A, "A2", sc.FACTS_A[10:])
        questions = [q for q, _ in sc.NEEDS_FACT] + sc.NO_FACT
        order = [questions[i // 2 + (10 if i % 2 else 0)] for i in range(20)]     # interleaved
        sessions["A3"] = await session(pipeline, sc.A, "A3", order)
        sessions["B3"] = await session(pipeline, sc.B, "B3", sc.QUESTIONS_B)
        timing = latency(pipeline.stages["memory"].bank, questions, sc.A)
    finally:
        await pipeline.aclose()
    a_texts, b_texts = [distinctive(f) for f in sc.FACTS_A], [distinctive(f) for f in sc.FACTS_B]
    need = dict(sc.NEEDS_FACT)
    recalled, false_inj, rows = 0, 0, []
    for q, req in zip(order, sessions["A3"]):
        mem = memory_text(req)
        if q in need:
            ok = a_texts[need[q]] in mem
            recalled += ok
            rows.append(("needs", q, ok, new_block(req)))
        else:
            false_inj += new_block(req)
            rows.append(("none", q, not new_block(req), new_block(req)))
    leaks = sum(t in memory_text(r) for name, reqs in sessions.items() for r in reqs
                for t in (b_texts if name.startswith("A") else a_texts))
    violations = sum(1 for reqs in sessions.values() for prev, cur in zip(reqs, reqs[1:]) if prefix_violations(prev, cur))
    turns = sum(len(r) for r in sessions.values())
    blocks = [b["text"] for reqs in sessions.values() for r in reqs for b in r["messages"][-1]["content"]
              if b.get("type") == "text" and b["text"].startswith("<lynkr-memory>")]
    out = {"recall_at_5": recalled / len(sc.NEEDS_FACT), "false_injection_rate": false_inj / len(sc.NO_FACT),
           "leaks": leaks, "prefix_violations": violations, "turns": turns, "injections": len(blocks),
           "injected_tokens_mean": round(sum(count_text(b) for b in blocks) / len(blocks)) if blocks else 0, **timing}
    if show:
        for kind, q, ok, injected in rows:
            print(f"  {'ok ' if ok else 'MISS'} {kind:<5} {'+mem' if injected else '    '} {q}")
    return out


def latency(bank, questions: list[str], project: str, reps: int = 20) -> dict:
    """In-process retrieval times for project A's questions: ranking alone and with the embedding."""
    from lynkr.memory.scope import Scope

    scope = Scope("", project)
    vectors = bank.embedder.embed(questions)
    rank_ms, recall_ms = [], []
    for _ in range(reps):
        for q, v in zip(questions, vectors):
            t = time.perf_counter()
            bank.store.search(scope, v, q, limit=bank.limits.retrieval_limit, min_relevance=bank.limits.min_relevance)
            rank_ms.append((time.perf_counter() - t) * 1000)
    for q in questions * 3:
        t = time.perf_counter()
        bank.recall(scope, q, turn=True)
        recall_ms.append((time.perf_counter() - t) * 1000)

    def pct(xs, p):
        return round(statistics.quantiles(xs, n=100)[p - 1], 3)
    return {"memories_in_project": bank.store.count(scope), "rank_ms_p50": pct(rank_ms, 50), "rank_ms_p95": pct(rank_ms, 95),
            "recall_with_embedding_ms_p50": pct(recall_ms, 50), "recall_with_embedding_ms_p95": pct(recall_ms, 95)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min-relevance", type=float, default=None, help="default: the stage's default")
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--show", action="store_true", help="one line per session-3 question")
    ap.add_argument("--bar-alone", action="store_true",
                    help="adaptive_bar: false (min_relevance for every turn), to compare with the question rules")
    names = ["dev"] + sorted((p.stem.removeprefix("memory_") for p in (ROOT / "benchmarks" / "data").glob("memory_fresh*.py")),
                             key=lambda n: int(n.removeprefix("fresh") or 1))
    ap.add_argument("--scenario", choices=names, default="dev", help="dev (this file) or benchmarks/data/memory_NAME.py")
    args = ap.parse_args()
    if args.min_relevance is None:
        from lynkr.stages.memory import MemoryStage
        args.min_relevance = MemoryStage.defaults()["min_relevance"]
    res = asyncio.run(run(args.min_relevance, args.limit, args.show, scenario(args.scenario), not args.bar_alone))
    print(f"scenario {args.scenario}, min_relevance {args.min_relevance}{' (bar alone)' if args.bar_alone else ''}, "
          f"retrieval_limit {args.limit}, {res['turns']} turns")
    print(f"recall@{args.limit} on questions needing a fact: {res['recall_at_5']:.0%}")
    print(f"questions needing no fact that got a memory: {res['false_injection_rate']:.0%}")
    print(f"cross-project leaks: {res['leaks']}")
    print(f"prefix violations: {res['prefix_violations']}")
    print(f"turns with a memory block: {res['injections']} of {res['turns']}, {res['injected_tokens_mean']} tokens each on average")
    print(f"retrieval in-process ({res['memories_in_project']} memories): ranking p50 {res['rank_ms_p50']} ms, "
          f"p95 {res['rank_ms_p95']} ms; with the question's embedding p50 {res['recall_with_embedding_ms_p50']} ms, "
          f"p95 {res['recall_with_embedding_ms_p95']} ms")
    ok = (res["recall_at_5"] >= 0.9 and res["false_injection_rate"] <= 0.1 and res["leaks"] == 0
          and res["prefix_violations"] == 0 and res["rank_ms_p50"] <= 5)
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
