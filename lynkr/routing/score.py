"""A request's score and tier, from what the user wrote (the `score` stage's algorithm).

The score adds weighted dimensions (lynkr/routing/signals.py) read from the user's own text
(lynkr/routing/text.py); thresholds turn it into a tier. Claude Code's background calls go to
SIMPLE whatever they say (lynkr/routing/side.py), and inside a tool loop the tier never drops below
the one the loop started on (lynkr/routing/sessions.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lynkr.config.loader import TIERS
from lynkr.routing.sessions import TierMemory, ask_key
from lynkr.routing.side import side_request
from lynkr.routing.signals import measure
from lynkr.routing.text import read_conversation

__all__ = ["DEFAULT_WEIGHTS", "DEFAULT_THRESHOLDS", "DIMENSIONS", "Scorer", "Scored"]

DEFAULT_WEIGHTS = {
    "length": 16, "code": 10, "named": 8, "action": 24, "scope": 22, "reasoning": 28, "risk": 14, "problem": 14,
    "question": -8, "small": -3, "agentic": 10, "conversation": 4,
}
DEFAULT_THRESHOLDS = {"MEDIUM": 7, "COMPLEX": 25, "REASONING": 45}

# What each dimension measures (the score stage's option reference).
DIMENSIONS = {
    "length": "words in the ask (full at 80)",
    "code": "a code block or code lines in the ask",
    "named": "files, paths and identifiers named (full at 4)",
    "action": "strongest verb: lookup < edit < build (refactor, migrate) < design (design, prove, audit)",
    "scope": "breadth words, enumerations, several steps, components and whole systems",
    "reasoning": "reasoning markers (prove, derive, trade-offs, analyse, compare), negation-aware",
    "risk": "risk domains: security, concurrency, data, distributed, money, production; negation-aware",
    "problem": "a fault to diagnose: leak, crash, intermittent, timeout, root cause",
    "question": "a one-sentence question (use a negative weight to lower the score)",
    "small": "a function-sized target and nothing bigger (negative lowers the score)",
    "agentic": "tool-loop depth and failed tool results",
    "conversation": "user turns so far",
}


@dataclass(slots=True)
class Scored:
    score: float | None
    tier: str
    why: str
    ask: str                                  # where the ask came from (conv.ask_source)
    parts: dict = field(default_factory=dict)  # dimension -> {points, why}
    side: str | None = None                   # the kind of background call, when it is one
    floor: tuple | None = None                # (ask key, tier index) the session memory holds now


class Scorer:
    """Weights and thresholds (validated by the caller), and the session memory when stable."""

    def __init__(self, weights: dict, thresholds: dict, *, reasoning_min: float, default_tier: str,
                 side_requests: bool, background_models: list[str], follow_up_words: int,
                 max_sessions: int | None):
        self.weights = {**DEFAULT_WEIGHTS, **weights}
        th = {**DEFAULT_THRESHOLDS, **thresholds}
        self.thresholds = [(t, th[t]) for t in TIERS[1:]]
        self.reasoning_min = reasoning_min
        self.default_tier = default_tier
        self.side_requests = side_requests
        self.background_models = background_models
        self.follow_up_words = follow_up_words
        self.memory = TierMemory(max_sessions) if max_sessions else None
        # Score once now so the first real request pays no lazy setup.
        measure("Refactor `a.py` across the repo; why?\n```x = 1```", read_conversation({}), self.weights)

    @staticmethod
    def thresholds_problem(thresholds: dict) -> str | None:
        th = {**DEFAULT_THRESHOLDS, **thresholds}
        levels = [th[t] for t in TIERS[1:]]
        if levels != sorted(levels) or len(set(levels)) != len(levels):
            return ("thresholds must increase: MEDIUM < COMPLEX < REASONING "
                    f"(got {', '.join(f'{t}={th[t]}' for t in TIERS[1:])})")
        return None

    def score(self, request: dict, session: str | None, remote: tuple | None = None) -> Scored:
        """`remote`: the session's floor as the fleet knows it (SharedFloors.fetch), merged first."""
        conv = read_conversation(request)
        side = side_request(request, conv, self.background_models) if self.side_requests else None
        if side:
            return Scored(0.0, TIERS[0], f"side request: {side}", conv.ask_source, side=side)
        if not conv.ask:
            return Scored(None, self.default_tier, "no user text to score", conv.ask_source)
        score, parts = measure(conv.ask, conv, self.weights)
        score = round(score, 1)
        tier = self.tier_for(score, parts)
        why = "score" if conv.ask_source == "last_message" else "score of the last user text"
        floor = None
        if self.memory is not None and session:
            if remote is not None:
                self.memory.merge(session, remote)
            tier, why, floor = self._stable(session, conv, tier, why)
        return Scored(score, tier, why, conv.ask_source, parts, floor=floor)

    def tier_for(self, score: float, parts: dict) -> str:
        tier = TIERS[0]
        for name, floor in self.thresholds:
            if score >= floor:
                tier = name
        if tier == "REASONING" and parts.get("reasoning", {}).get("points", 0) < self.reasoning_min:
            tier = "COMPLEX"
        return tier

    def _stable(self, session: str, conv, tier: str, why: str) -> tuple[str, str, tuple]:
        """Keep a task on the tier it started on: inside its tool loop, and across a short follow-up."""
        key = ask_key(conv.ask)
        floor = self.memory.floor(session, key)
        if floor is not None and floor > TIERS.index(tier):
            why = f"session floor: this tool loop started on {TIERS[floor]} (score says {tier})"
            tier = TIERS[floor]
        elif floor is None and conv.human_turns > 1 and conv.ask_words <= self.follow_up_words:
            last = self.memory.last(session)
            if last is not None and last > TIERS.index(tier):
                why = f"follow-up: carries on the previous {TIERS[last]} task (score says {tier})"
                tier = TIERS[last]
        return tier, why, self.memory.record(session, key, TIERS.index(tier))
