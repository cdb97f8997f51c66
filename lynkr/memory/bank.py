"""A project's memory as the stage and the tools use it: the embedder, the store and the limits.

Every method embeds, so callers on the event loop run them in `EMBED_POOL` (one thread: the
model is single-threaded anyway, and it keeps memory work from queueing behind token counting).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lynkr.memory.extract import extract
from lynkr.memory.question import about_project
from lynkr.memory.rank import SPREAD, bar
from lynkr.memory.scope import Scope
from lynkr.memory.store import Memory, MemoryStore

__all__ = ["MemoryBank", "Limits", "EMBED_POOL", "MemoryInputError"]

RECALL_TOKENS = 256
EMBED_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lynkr-memory-embed")
KINDS = ("note", "decision", "preference", "fact")


class MemoryInputError(ValueError):
    """What the model asked of a memory tool cannot be done; the message is the tool error it sees."""


@dataclass(frozen=True)
class Limits:
    retrieval_limit: int = 5
    min_relevance: float = 0.28
    adaptive_bar: bool = True        # a turn's bar moves with what it asks (question.py)
    max_chars: int = 500             # one memory
    max_candidates: int = 8          # memories learned from one turn


class MemoryBank:
    def __init__(self, store: MemoryStore, embedder, limits: Limits):
        self.store = store
        self.embedder = embedder
        self.limits = limits

    def _vectors(self, texts: list[str], max_tokens: int | None = None):
        return self.embedder.embed(texts, max_tokens=max_tokens)

    def recall(self, scope: Scope, text: str, limit: int | None = None, *, turn: bool = False
               ) -> list[tuple[float, Memory]]:
        """The relevant memories for `text`: a search query, or with `turn` the newest user turn,
        whose bar moves with what it asks (question.py) unless `adaptive_bar` is off."""
        if not text.strip() or not self.store.count(scope):
            return []
        # The model's cost grows with every token: a long turn is embedded by its first RECALL_TOKENS.
        text = text[:4000]
        vector = self._vectors([text], max_tokens=RECALL_TOKENS)[0]
        threshold, spread = self.limits.min_relevance, 0.0
        if turn and self.limits.adaptive_bar:
            threshold, spread = bar(threshold, about_project(text)), SPREAD
        return self.store.search(scope, vector, text, limit=limit or self.limits.retrieval_limit,
                                 min_relevance=threshold, spread=spread)

    def learn(self, scope: Scope, text: str, source: str = "user") -> list[tuple[str, Memory]]:
        """Store what the rules find in `text` when it is novel; (outcome, memory) per candidate."""
        found = extract(text, max_chars=self.limits.max_chars, max_candidates=self.limits.max_candidates)
        if not found:
            return []
        vectors = self._vectors([c.text for c in found])
        return [self.store.add(scope, c.text, v, kind=c.kind, importance=c.importance, source=source)
                for c, v in zip(found, vectors)]

    def remember(self, scope: Scope, text, kind="note") -> tuple[str, Memory]:
        """memory_add: the model asked to keep `text` (only deduplicated, not novelty-tested)."""
        if not isinstance(text, str) or not text.strip():
            raise MemoryInputError("memory_add needs `content`: the text to remember")
        if len(text) > self.limits.max_chars:
            raise MemoryInputError(f"a memory is at most {self.limits.max_chars} characters; this one has "
                                   f"{len(text):,}: keep the fact itself, not the document")
        if kind not in KINDS:
            kind = "note"
        text = " ".join(text.split())
        vector = self._vectors([text])[0]
        return self.store.add(scope, text, vector, kind=kind, importance=0.8, source="tool", novelty=False)

    def forget(self, scope: Scope, mid) -> Memory:
        if not isinstance(mid, str) or not mid:
            raise MemoryInputError("memory_forget needs `id`, as memory_search shows it (m_…)")
        gone = self.store.forget(scope, mid[:64])
        if gone is None:
            raise MemoryInputError(f"no memory {mid[:64]!r} in this project")
        return gone
