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
takes well under a millisecond. With `state: {redis: URL}` that floor is shared by the replicas
(lynkr/routing/sessions.py SharedFloors: one GET per turn of a session, a SET when it changes).
"""
from __future__ import annotations

from lynkr.config.loader import TIERS
from lynkr.exchange import Exchange
from lynkr.routing.score import DEFAULT_THRESHOLDS, DEFAULT_WEIGHTS, DIMENSIONS, Scorer
from lynkr.routing.sessions import SharedFloors
from lynkr.stage import Stage

__all__ = ["Score", "DEFAULT_WEIGHTS"]


class Score(Stage):
    name = "score"
    edits = "copy-on-write"
    summary = "Scores a request 0–100 from what the user wrote and picks a tier; explains every point."
    options_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "weights": {
                "type": "object", "additionalProperties": False,
                "description": "Points each dimension gives at full strength; unnamed ones keep their default.",
                "properties": {k: {"type": "number", "description": DIMENSIONS[k], "default": v}
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
        problem = Scorer.thresholds_problem(options.get("thresholds") or {})
        if problem:
            raise ctx.error(problem, "thresholds")
        self.scorer = Scorer(options.get("weights") or {}, options.get("thresholds") or {},
                             reasoning_min=options["reasoning_min_points"], default_tier=options["default_tier"],
                             side_requests=options["side_requests"], background_models=options["background_models"],
                             follow_up_words=options["follow_up_words"],
                             max_sessions=options["max_sessions"] if options["session_stability"] else None)
        state = ctx.shared.get("state")
        self.floors = SharedFloors(state) if state is not None and options["session_stability"] else None

    async def run(self, x: Exchange) -> None:
        remote = await self.floors.fetch(x.session) if self.floors is not None and x.session else None
        got = self.scorer.score(x.request, x.session, remote)
        if got.floor is not None and got.floor != remote and self.floors is not None:
            await self.floors.store(x.session, got.floor)
        if got.side:
            x.vars["side_request"] = got.side
        x.vars["score"] = got.score
        x.vars["tier"] = got.tier
        x.vars["score_parts"] = {k: v["points"] for k, v in got.parts.items()}
        x.vars["tier_reason"] = got.why
        x.stage_event.detail = {"score": got.score, "tier": got.tier, "reason": got.why, "ask": got.ask,
                                "points": x.vars["score_parts"], "dimensions": got.parts}
        x.stage_event.quotes = ("dimensions",)      # the evidence is words of the prompt
