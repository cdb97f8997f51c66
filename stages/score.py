"""score: a 0–100 complexity score and a tier (SIMPLE, MEDIUM, COMPLEX, REASONING) for a request.

    - id: score
      uses: score
      with:
        thresholds: {MEDIUM: 7, COMPLEX: 25, REASONING: 45}
        weights: {reasoning: 30}          # only the ones you change

The score adds weighted dimensions read from what the user wrote (never from `<system-reminder>`
blocks, tool schemas or tool output): the length of the ask, code, named files and identifiers,
the strongest action verb, scope, reasoning markers, risk domains, a problem to diagnose,
question vs instruction, the agentic state and the conversation's length. Each dimension's points
and the evidence for them are in `x.vars["score_parts"]`, so `lynkr explain` shows why.

Claude Code's background calls go to SIMPLE whatever they say, and inside a tool loop the tier
never drops below the one the loop started on. No model runs: the score is deterministic and
takes well under a millisecond.
"""
from __future__ import annotations

from lynkr.config.loader import TIERS
from lynkr.exchange import Exchange
from lynkr.routing.sessions import TierMemory
from lynkr.routing.side import side_request
from lynkr.routing.signals import measure
from lynkr.routing.text import read_conversation
from lynkr.stage import Stage

DEFAULT_WEIGHTS = {
    "length": 16, "code": 10, "named": 8, "action": 24, "scope": 22, "reasoning": 28, "risk": 14, "problem": 14,
    "question": -8, "small": -3, "agentic": 10, "conversation": 4,
}
DEFAULT_THRESHOLDS = {"MEDIUM": 7, "COMPLEX": 25, "REASONING": 45}

_DIM_HELP = {
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


class Score(Stage):
    name = "score"
    summary = "Scores a request 0–100 from what the user wrote and picks a tier; explains every point."
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "weights": {
                "type": "object", "additionalProperties": False,
                "description": "Points each dimension gives at full strength; unnamed ones keep their default.",
                "properties": {k: {"type": "number", "description": _DIM_HELP[k], "default": v}
                               for k, v in DEFAULT_WEIGHTS.items()},
                "default": DEFAULT_WEIGHTS,
            },
            "thresholds": {
                "type": "object", "additionalProperties": False,
                "description": "The lowest score of each tier above SIMPLE; must increase.",
                "properties": {t: {"type": "number", "minimum": 0, "maximum": 100, "default": DEFAULT_THRESHOLDS[t],
                                   "description": f"lowest score routed to {t}"} for t in TIERS[1:]},
                "default": DEFAULT_THRESHOLDS,
            },
            "reasoning_min_points": {
                "type": "number", "minimum": 0, "default": 10,
                "description": "REASONING also needs this many points from reasoning markers; else COMPLEX. "
                               "A big task is not a hard-to-think-about one.",
            },
            "side_requests": {
                "type": "boolean", "default": True,
                "description": "Send Claude Code's background calls (suggestions, titles, probes) to SIMPLE.",
            },
            "background_models": {
                "type": "array", "items": {"type": "string"}, "default": ["*haiku*"],
                "description": "Glob patterns of client model names that mark a background call (SIMPLE).",
            },
            "session_stability": {
                "type": "boolean", "default": True,
                "description": "Inside a tool loop, never route below the tier the loop started on.",
            },
            "follow_up_words": {
                "type": "integer", "minimum": 0, "default": 8,
                "description": "A later user turn this short (\"yes, go ahead\", \"now run the tests\") keeps the "
                               "session's previous tier, since it carries on that task; 0 turns this off.",
            },
            "max_sessions": {
                "type": "integer", "minimum": 1, "default": 10000,
                "description": "Sessions remembered for stability (least recently used are forgotten).",
            },
            "default_tier": {
                "enum": list(TIERS), "default": "MEDIUM",
                "description": "Tier used when the request has no user text to score.",
            },
        },
    }
    examples = ["- {id: score, uses: score, with: {thresholds: {COMPLEX: 30}}}"]

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.weights = {**DEFAULT_WEIGHTS, **(options.get("weights") or {})}
        th = {**DEFAULT_THRESHOLDS, **(options.get("thresholds") or {})}
        levels = [th[t] for t in TIERS[1:]]
        if levels != sorted(levels) or len(set(levels)) != len(levels):
            raise ctx.cfg.error("thresholds must increase: MEDIUM < COMPLEX < REASONING "
                                f"(got {', '.join(f'{t}={th[t]}' for t in TIERS[1:])})",
                                ("stages", ctx.index, "with", "thresholds"))
        self.thresholds = [(t, th[t]) for t in TIERS[1:]]
        self.reasoning_min = options["reasoning_min_points"]
        self.memory = TierMemory(options["max_sessions"]) if options["session_stability"] else None
        # Score once at load so the first real request pays no lazy setup.
        measure("Refactor `a.py` across the repo; why?\n```x = 1```", read_conversation({}), self.weights)

    def tier_for(self, score: float, parts: dict) -> str:
        tier = TIERS[0]
        for name, floor in self.thresholds:
            if score >= floor:
                tier = name
        if tier == "REASONING" and parts.get("reasoning", {}).get("points", 0) < self.reasoning_min:
            tier = "COMPLEX"
        return tier

    def _stable(self, session: str, conv, tier: str, why: str) -> tuple[str, str]:
        """Keep a task on the tier it started on: inside its tool loop, and across a short follow-up."""
        key = hash(conv.ask)
        floor = self.memory.floor(session, key)
        if floor is not None and floor > TIERS.index(tier):
            why = f"session floor: this tool loop started on {TIERS[floor]} (score says {tier})"
            tier = TIERS[floor]
        elif floor is None and conv.human_turns > 1 and conv.ask_words <= self.options["follow_up_words"]:
            last = self.memory.last(session)
            if last is not None and last > TIERS.index(tier):
                why = f"follow-up: carries on the previous {TIERS[last]} task (score says {tier})"
                tier = TIERS[last]
        self.memory.record(session, key, TIERS.index(tier))
        return tier, why

    async def run(self, x: Exchange) -> None:
        conv = read_conversation(x.request)
        ev = x.event(self.id)
        why = side = None
        if self.options["side_requests"]:
            side = side_request(x.request, conv, self.options["background_models"])
        if side:
            score, parts, tier, why = 0.0, {}, TIERS[0], f"side request: {side}"
            x.vars["side_request"] = side
        elif not conv.ask:
            score, parts, tier, why = None, {}, self.options["default_tier"], "no user text to score"
        else:
            score, parts = measure(conv.ask, conv, self.weights)
            score = round(score, 1)
            tier = self.tier_for(score, parts)
            why = "score" if conv.ask_source == "last_message" else "score of the last user text"
            if self.memory is not None and x.session:
                tier, why = self._stable(x.session, conv, tier, why)
        x.vars["score"] = score
        x.vars["tier"] = tier
        x.vars["score_parts"] = {k: v["points"] for k, v in parts.items()}
        x.vars["tier_reason"] = why
        if ev is not None:
            ev.detail = {"score": score, "tier": tier, "reason": why, "ask": conv.ask_source,
                         "dimensions": parts}
