"""Does a turn ask about this project, or ask something any developer might? Retrieval's bar moves
with the answer (rank.py: `bar`).

A question that needs a stored fact often shares no word with it ("What's the oldest Rust toolchain
we have to stay compatible with?" for "the MSRV for this crate is 1.74": relevance 0.20), while a
general question can sit close to a memory by topic ("How do I squash my last three commits?" next to
"the changelog is generated from conventional commits": 0.36). Relevance alone cannot tell them
apart; how the question is asked can, and the two sides are closed sets of phrasings:

| side    | told by (first person, house rules, this project's own things)                            |
|---------|-------------------------------------------------------------------------------------------|
| project | we / our / us; "this/the project, repo, app, service, lib, CLI, tool, …"; "can/should/may/must I/we", "do I need to", "am I allowed", "is it OK/fine/allowed to"; opens with where/who/which; "a/the new X"; "this/these X" (not "this loop/code/snippet/…": something pasted); "locally", "in dev/staging/prod/CI" |
| general | opens with a task verb (explain, write, give me, convert, show me, summarize, describe, implement, generate, compare, translate, refactor); "difference(s) between", "differ(s)/different from", "vs", "versus", "compared to/with", "instead of"; "what is a/an …", "what does … mean/do/contain/stand for/prevent", "how does X work"; "when should I use"; "how do/can/would I …" with "a/an/my/any …" or ending "in/with/on/using X" (how to do something anywhere, not "how do I run the tests") |

Each side counts its matching rows; the side with more wins, a tie is neither. Only the turn's first
`SCAN_CHARS` are read: a long turn is a task, and its opening says what it is.
"""
from __future__ import annotations

import re

__all__ = ["about_project", "PROJECT", "GENERAL", "NEITHER"]

PROJECT, GENERAL, NEITHER = 1, -1, 0
SCAN_CHARS = 600

_I = re.IGNORECASE
_PARTS = (r"project|repo|repository|codebase|code base|monorepo|app|service|crate|lib|library|package|module|"
          r"cli|tool|program|team|firmware|board|site|backend|frontend|server|api|stack")
_PROJECT_ROWS = [re.compile(x, _I) for x in (
    r"\b(?:we|our|ours|us|we're|we've|we'd|we'll)\b",
    rf"\b(?:this|the) (?:{_PARTS})\b",
    r"\b(?:can|should|may|must) (?:i|we)\b|\bdo i (?:need|have) to\b|\bam i (?:allowed|supposed)\b"
    r"|\b(?:is it|is that|are they) (?:ok|okay|fine|allowed|safe|acceptable)\b",
    r"^(?:where|who|whom)\b",
    r"^which\b",
    r"\b(?:a|the) new \w+",
    r"\b(?:this|these) (?!(?:loop|code|snippet|function|line|lines|query|regex|string|list|one|file)\b)\w+",
    r"\b(?:locally|in (?:dev|staging|prod|production|ci))\b",
)]
_GENERAL_ROWS = [re.compile(x, _I) for x in (
    r"^(?:please )?(?:explain|write|give me|convert|show me|summari[sz]e|describe|implement|generate|compare|"
    r"translate|refactor)\b",
    r"\bdifferences? between\b|\b(?:differs?|different) from\b|\b(?:vs\.?|versus)\s|\bcompared? (?:to|with)\b"
    r"|\binstead of\b",
    r"^what(?:'s| is| are) (?:a|an)\b",
    r"^what does .* (?:mean|do|contain|stand for|prevent)\b",
    r"^how (?:does|do|is|are) \w+(?: \w+)? (?:work|implemented)\b",
    r"\bwhen should i use\b",
    r"^how (?:do|can|would) i\b.*(?:\b(?:a|an|my|any)\b|\b(?:in|with|on|using) [a-z][\w.+#-]*\W*$)",
)]


def about_project(text: str) -> int:
    """PROJECT, GENERAL or NEITHER for a user turn (the table above)."""
    text = " ".join(text[:SCAN_CHARS].split())
    project = sum(1 for r in _PROJECT_ROWS if r.search(text))
    general = sum(1 for r in _GENERAL_ROWS if r.search(text))
    return (project > general) - (general > project)
