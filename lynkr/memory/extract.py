"""What is worth remembering in a turn: a documented rule set over sentences.

A user turn's own text (harness blocks such as `<system-reminder>` and tool results left out) is
split into sentences; a sentence becomes a candidate memory when it matches one of the rules,
in this order (the first match names its kind):

| kind        | rule (case-insensitive)                                                         | importance |
|-------------|---------------------------------------------------------------------------------|-----------:|
| note        | starts with remember / note / fyi / keep in mind / for the record               | 0.9 |
| decision    | we/I decided, chose, agreed, settled on, are going with, will use; let's use/go with/keep/stick; from now on; going forward | 0.8 |
| preference  | I/we prefer, like, want, need, use, avoid, never/always/don't use; always/never + verb | 0.7 |
| fact        | this/the/our project, repo, service, app, API, database, CI… + uses/is/runs/lives/has/requires/depends on; X is stored/kept/located/configured/deployed/based/built in/at/on/by/with; port/url/endpoint/version/branch/path/owner is … | 0.6 |

Questions (a `?` at the end, or a leading question word) and commands to the model ("fix the
test", "show me") are never candidates: they ask, they do not state. Emphasis ("important",
"must", "always", "never") adds 0.1 importance. A sentence is at most `max_chars` characters
(longer ones are cut at a word boundary). The embedding novelty test (surprise) that decides
whether a candidate is stored lives in the store (lynkr/memory/store.py), since it compares with
what the project already remembers. `extract` is pure and fast (regexes over one turn).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from lynkr.kit.harness import strip_harness

__all__ = ["Candidate", "extract", "turn_text", "RULES"]


@dataclass(frozen=True, slots=True)
class Candidate:
    text: str
    kind: str
    importance: float


_I = re.IGNORECASE
RULES: list[tuple[str, float, re.Pattern]] = [
    ("note", 0.9, re.compile(r"^(?:please\s+)?(?:remember|note|fyi|keep in mind|for the record)\b(?:\s+that)?\s*[:,-]?\s*", _I)),
    ("decision", 0.8, re.compile(
        r"\b(?:we|i)(?:\s+have|'ve)?\s+(?:decided|chose|agreed|settled on|are going with|will use|'ll use|switched to)\b"
        r"|\blet'?s\s+(?:use|go with|keep|stick)\b|\bfrom now on\b|\bgoing forward\b", _I)),
    ("preference", 0.7, re.compile(
        r"\b(?:i|we)\s+(?:always\s+|usually\s+|only\s+|never\s+)?(?:prefer|like|want|need|use|avoid|don'?t use|do not use|never use)\b"
        r"|^(?:always|never)\s+\w+", _I)),
    ("fact", 0.6, re.compile(
        r"\b(?:this|the|our)\s+(?:[\w-]+\s+){0,3}?(?:project|repo|repository|codebase|service|app|api|backend|frontend|"
        r"database|db|team|build|ci|pipeline|server|cluster|library|package|staging|production)\b[^.?!]{0,60}?"
        r"\b(?:uses|use|is|are|runs|lives|has|have|requires|depends on|needs|targets|stores|deploys|talks to)\b"
        r"|\b(?:is|are)\s+(?:stored|kept|located|configured|defined|deployed|hosted|generated|based|built|written)\s+(?:in|at|on|by|with|as|from|under)\b"
        r"|\b(?:port|url|endpoint|version|branch|path|owner|maintainer|timeout|limit|bucket|region|schema)\s+(?:is|are|=)\s+\S", _I)),
]
_EMPHASIS = re.compile(r"\b(?:important|must|always|never|critical)\b", _I)
_QUESTION = re.compile(r"^(?:what|how|why|where|which|who|whom|whose|when|can|could|would|will|does|do|did|is|are|"
                       r"should|shall|may|might|have|has)\b", _I)
_COMMAND = re.compile(r"^(?:please\s+)?(?:fix|show|list|run|write|add|make|create|explain|tell|give|find|check|open|"
                      r"read|refactor|implement|update|change|delete|remove|rename|try|help|look)\b", _I)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
MIN_CHARS = 12


def turn_text(message: dict) -> str:
    """A message's own text: its text blocks without harness blocks (no tool results, no images)."""
    content = message.get("content")
    if isinstance(content, str):
        return strip_harness(content)
    parts = [strip_harness(b["text"]) for b in content or ()
             if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]
    return "\n".join(p for p in parts if p)


def _cut(sentence: str, max_chars: int) -> str:
    if len(sentence) <= max_chars:
        return sentence
    cut = sentence[:max_chars]
    return cut[:cut.rfind(" ")] if " " in cut[max_chars // 2:] else cut


def extract(text: str, *, max_chars: int = 500, max_candidates: int = 8) -> list[Candidate]:
    """The candidate memories stated in `text`, in order, at most `max_candidates`."""
    out: list[Candidate] = []
    for raw in _SENTENCES.split(text[: max_chars * max_candidates * 4]):
        s = raw.strip().strip("-*• ").strip()
        if len(s) < MIN_CHARS or s.endswith("?") or _QUESTION.match(s) or _COMMAND.match(s):
            continue
        for kind, importance, rule in RULES:
            m = rule.search(s)
            if m is None:
                continue
            if kind == "note":
                s = s[m.end():].strip() or s
                if len(s) < MIN_CHARS:
                    break
                s = s[0].upper() + s[1:]
            if _EMPHASIS.search(s):
                importance = min(1.0, importance + 0.1)
            out.append(Candidate(_cut(s, max_chars), kind, importance))
            break
        if len(out) >= max_candidates:
            break
    return out
