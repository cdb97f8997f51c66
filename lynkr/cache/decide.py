"""The semantic cache's decision for one question against stored ones: a similarity over the
threshold, then the guard (lynkr.cache.guard). The stage runs it per lookup; `decide` runs it
outside a server, for benchmarks/cache_quality.py and `lynkr explain --against`."""
from __future__ import annotations

import numpy as np

from lynkr.cache import guard

__all__ = ["decide", "judge", "refusal_reason", "DEFAULT_THRESHOLD", "DEFAULT_GENERAL_THRESHOLD"]

DEFAULT_THRESHOLD = 0.7            # the guard decides above it: benchmarks/cache_quality.py, docs/cache.md
DEFAULT_GENERAL_THRESHOLD = 0.95   # for everyday questions, where words carry less of the meaning


def refusal_reason(question: str, cached: str, sim: float, threshold: float, general: float, use_guard: bool) -> str | None:
    """Why a candidate over `threshold` is not served, or None."""
    if not use_guard:
        return None
    if sim < general and not (guard.technical(question) or guard.technical(cached)):
        return f"similarity: {sim:.3f} < {general} for a question naming nothing technical"
    return guard.check(question, cached)


def decide(embedder, question: str, cached: list[str], *, threshold: float = DEFAULT_THRESHOLD,
           general_threshold: float = DEFAULT_GENERAL_THRESHOLD, use_guard: bool = True,
           vectors=None) -> tuple[int | None, float, list]:
    """The stage's decision for `question` against cached questions, outside a server: (index of
    the hit or None, best similarity, rejections)."""
    qv = embedder.embed([question])[0] if vectors is None else vectors[0]
    cv = embedder.embed(cached) if vectors is None else vectors[1]
    sims = cv @ qv
    rejected = []
    best = float(sims.max()) if len(cached) else 0.0
    for i in np.argsort(-sims):
        if sims[i] < threshold:
            break
        reason = refusal_reason(question, cached[i], float(sims[i]), threshold, general_threshold, use_guard)
        if reason is None:
            return int(i), float(sims[i]), rejected
        rejected.append(reason)
    return None, best, rejected


def judge(embedder, question: str, cached: list[str], *, threshold: float = DEFAULT_THRESHOLD,
          general_threshold: float = DEFAULT_GENERAL_THRESHOLD, use_guard: bool = True,
          max_tokens: int | None = None) -> list[dict]:
    """Each cached question judged against `question` as the stage judges a candidate, every reason
    shown (`lynkr explain --against`): the similarity, the verdict (served, refused, under the
    threshold) and the guard's reading of the pair, its rule and tokens, even under the threshold."""
    vectors = embedder.embed([question, *cached], max_tokens=max_tokens)
    out = []
    for text, vec in zip(cached, vectors[1:]):
        sim = float(vec @ vectors[0])
        reason = refusal_reason(question, text, sim, threshold, general_threshold, use_guard)
        verdict = "under_threshold" if sim < threshold else "refused" if reason else "served"
        out.append({"cached": text, "similarity": round(sim, 4), "threshold": threshold, "verdict": verdict,
                    "reason": reason, "guard": guard.check(question, text) if use_guard else None,
                    "same_signature": guard.signature(question) == guard.signature(text)})
    return out
