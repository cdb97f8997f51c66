"""Which memories a request brings back: relevance first (embedding cosine blended with lexical
overlap), then importance and recency to order what is relevant.

    relevance = 0.75 * cosine(query, memory) + 0.25 * overlap
    overlap   = |content words of the query that the memory also has| / |content words of the query|
    score     = relevance + 0.05 * importance + 0.05 * exp(-age_since_last_use / 30 days)

A question brings memories back only when its most relevant one reaches the bar, so a question no
memory is about gets nothing injected; the bar is `min_relevance`, lowered by `PROJECT_SHIFT` for a
turn that asks about the project's own ways and raised by `GENERAL_SHIFT` for one that asks what any
developer might (question.py; the values are tuned by benchmarks/memory_eval.py, docs/memory.md).
Once it is reached, the others at most `SPREAD` below the bar come along: a question in other words
than the fact's sits lower, and the best match is often a neighbour of the fact it needs. Importance
and recency only order relevant memories: an important memory about something else is never
injected. Lexical overlap is computed for the best `LEXICAL_POOL` by cosine only, so a project's
ranking costs one matrix-vector product and a few set intersections.
"""
from __future__ import annotations

import math
import re

import numpy as np

__all__ = ["words", "rank", "bar", "W_COSINE", "W_LEXICAL", "LEXICAL_POOL", "SPREAD"]

W_COSINE, W_LEXICAL = 0.75, 0.25
W_IMPORTANCE, W_RECENCY = 0.05, 0.05
RECENCY_S = 30 * 86400
LEXICAL_POOL = 32
PROJECT_SHIFT, GENERAL_SHIFT = -0.10, 0.12
SPREAD = 0.10

_WORD = re.compile(r"[a-z0-9][a-z0-9_.+#-]*[a-z0-9+#]|[a-z0-9]", re.I)
_STOP = frozenset("""a an and are as at be but by can could did do does for from had has have how i if in into is it
its me my of on or our so that the their them then there these they this to was we were what when where which
who why will with would you your should shall may might must about use uses used using project we're i'm it's
tell know any some much many also just like want need get got""".split())
# Short forms developers write for the long ones a stored fact may use ("the lib" asks about "library
# code", "env vars" about "environment variables"): met as one word by the lexical half.
_SHORT = {w: long for long, short in (
    ("library", "lib libs"), ("configuration", "config configs cfg conf settings"), ("repository", "repo repos"),
    ("dependency", "dep deps dependencies"), ("environment", "env envs"), ("variable", "var vars"),
    ("database", "db dbs"), ("kubernetes", "k8s kube"), ("authentication", "auth authn"),
    ("authorization", "authz"), ("production", "prod"), ("performance", "perf"), ("documentation", "docs doc"),
    ("application", "app apps"), ("package", "pkg pkgs"), ("implementation", "impl"),
    ("asynchronous", "async"), ("timezone", "tz"), ("message", "msg msgs"), ("request", "req reqs"),
    ("response", "resp"), ("error", "err errs"), ("javascript", "js"), ("python", "py"), ("pull", "pr prs"),
    ("directory", "dir dirs folder folders"), ("parameter", "param params"), ("argument", "arg args"),
    ("specification", "spec specs"), ("temporary", "tmp temp"), ("statistics", "stats"),
) for w in short.split()}


def stem(w: str) -> str:
    """A light stemmer: `logging`, `logged`, `logs` and `log` meet; so do `tests` and `test`,
    `injection` and `inject`, `migrations` and `migrate`, `deployment` and `deploy`."""
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    elif len(w) > 6 and w.endswith("ion"):
        w = w[:-3]
    elif len(w) > 7 and w.endswith("ment"):
        w = w[:-4]
    elif len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiousl":
        w = w[:-1]
    return w


def words(text: str) -> frozenset[str]:
    """Content words, lower-cased, short forms spelled out, stemmed."""
    return frozenset(stem(_SHORT.get(w, w)) for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) >= 2)


def bar(min_relevance: float, asked: int) -> float:
    """The relevance a turn's best memory must reach: `asked` is question.about_project's answer."""
    return min_relevance + (PROJECT_SHIFT if asked > 0 else GENERAL_SHIFT if asked < 0 else 0.0)


def rank(matrix: np.ndarray, word_sets: list[frozenset], importance: np.ndarray, last_used: np.ndarray,
         query: np.ndarray, query_words: frozenset, *, now: float, limit: int,
         min_relevance: float, spread: float = 0.0) -> list[tuple[float, float, int]]:
    """(score, relevance, row) of the best `limit` relevant rows, best first: none unless one reaches
    `min_relevance`, then every row at most `spread` below it."""
    n = matrix.shape[0]
    if n == 0 or limit <= 0:
        return []
    sims = matrix @ query
    pool = np.argsort(-sims)[:LEXICAL_POOL] if n > LEXICAL_POOL else np.arange(n)
    qn = len(query_words)
    relevant = [(W_COSINE * float(sims[row]) + W_LEXICAL * (len(query_words & word_sets[row]) / qn if qn else 0.0),
                 row) for row in pool.tolist()]
    if not relevant or max(relevant)[0] < min_relevance:
        return []
    out = []
    for relevance, row in relevant:
        if relevance < min_relevance - spread:
            continue
        recency = math.exp(-max(0.0, now - float(last_used[row])) / RECENCY_S)
        out.append((relevance + W_IMPORTANCE * float(importance[row]) + W_RECENCY * recency, relevance, row))
    out.sort(reverse=True)
    return out[:limit]
