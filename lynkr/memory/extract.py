"""What is worth remembering in a turn: a documented rule set over sentences.

A user turn's own text (harness blocks such as `<system-reminder>` and tool results left out) is
split into sentences; a sentence becomes a candidate memory when it matches one of the rules,
in this order (the first match names its kind):

| kind        | rule (case-insensitive)                                                         | importance |
|-------------|---------------------------------------------------------------------------------|-----------:|
| note        | starts with remember / note / fyi / keep in mind / for the record / heads up / just so you know / btw / reminder               | 0.9 |
| decision    | we/I/the team decided, chose, agreed, settled on, switched/moved/migrated to, are going with, will use; we're on/using; let's use/go with/keep/stick; from now on; going forward | 0.8 |
| preference  | I/we prefer, like, want, need, use, avoid, never/always/don't use, deploy, write; always/never/don't + verb; please keep/use/stick/follow | 0.7 |
| fact        | this/the/our project, repo, service, app, API, database, CI… + uses/is/runs/lives/has/requires/depends on; X is stored/kept/located/configured/deployed/based/built/partitioned/prefixed… in/at/on/by/with; port/url/endpoint/version/branch/path/owner is … | 0.6 |
| fact        | any other statement "X is / uses / runs / lives / goes / comes / listens …" that names something particular (a number, path, file, identifier, quoted string or a capitalised name inside the sentence) and has no word of what is happening now (error, failing, seems, right now…) | 0.5 |

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
# A token that names something particular: a number, a path or file, an identifier (snake_case,
# camelCase, dotted, a prefix like `veh_`), a quoted or backticked string, or a capitalised word
# inside the sentence (a product, a person, a team). A general statement without one ("the tests
# are slow") is an observation about today, not a fact to carry into next week's sessions.
_SPECIFIC = re.compile(r"\d|[\w.-]+/[\w./-]*|\b\w+\.\w{1,5}\b|\b[a-z]+_\w*|\b[a-z]+[A-Z]\w*|[`'\"][^`'\"]{2,}[`'\"]"
                       r"|(?<=\w[\s,(])[A-Z][\w+#-]+")
# Words of what is happening now (a failure being debugged, a first impression): not for keeping.
_TRANSIENT = re.compile(r"\b(?:errors?|fail(?:s|ed|ing)?|broken|crash\w*|bug|flaky|doesn'?t work|not working|i see|"
                        r"i get|i'?m getting|seems?|looks like|right now|at the moment|for now|today|yesterday)\b", _I)
# A subject that is the work in front of the model ("the function returns None", "this PR is ready").
_AT_HAND = re.compile(r"^(?:it|this|that|these|those|the)\s+(?:\w+\s+)?(?:function|method|class|test|tests|file|line|lines|"
                      r"output|result|diff|pr|change|changes|commit|code|fix|patch|query|loop|variable|build|run|"
                      r"snippet|example|answer|version you|one)\b", _I)
# How people lead into what they state ("For context, the data sits in …"): said, then set aside.
_LEAD_IN = re.compile(r"^(?:for context|as a rule|in general|generally|basically|also|and|so|in this (?:repo|project)|"
                      r"here|fwiw|by the way|btw|just so you know|for reference|context)\s*[,:-]\s*", _I)
_STATE = (r"(?:uses|use|is|are|runs|run|lives|live|has|have|requires|require|depends on|needs|need|targets|stores|"
          r"deploys|talks to|talk to|goes|go|comes|come|listens|listen|points|point|belongs|belong|starts|start|"
          r"sits|sit|gets|get|sends|send|reads|read|writes|write|calls|call|returns|return|expects|expect|owns|own|"
          r"is called|are called|is named|are named)")
_PARTICIPLE = (r"(?:stored|kept|located|configured|defined|deployed|hosted|generated|based|built|written|partitioned|"
               r"prefixed|suffixed|named|called|managed|owned|handled|served|scheduled|pinned|set|mounted|cached|"
               r"indexed|sharded|signed|encrypted|versioned|tagged|formatted|validated)")
RULES: list[tuple[str, float, re.Pattern]] = [
    ("note", 0.9, re.compile(
        r"^(?:please\s+)?(?:remember|note|fyi|f\.y\.i\.|keep in mind|for the record|heads[- ]up|just so you know|"
        r"for your information|btw|by the way|fwiw|psa|reminder|important)\b(?:\s+that)?\s*[:,-]?\s*", _I)),
    ("decision", 0.8, re.compile(
        r"\b(?:we|i|the team|our team)(?:\s+have|'ve)?\s+(?:decided|chose|agreed|settled on|are going with|will use|"
        r"'ll use|switched to|moved to|migrated to|standardi[sz]ed on|picked|went with)\b"
        r"|\b(?:we|i)(?:'re|\s+are|'m|\s+am)\s+(?:on|using|running|moving to|sticking with)\b"
        r"|\blet'?s\s+(?:use|go with|keep|stick|always|never)\b|\bfrom now on\b|\bgoing forward\b", _I)),
    ("preference", 0.7, re.compile(
        r"\b(?:i|we)\s+(?:always\s+|usually\s+|only\s+|never\s+)?(?:prefer|like|want|need|use|avoid|don'?t use|"
        r"do not use|never use|deploy|ship|release|write|keep|run)\b|\b(?:i|we)\s+(?:always|never)\s+\w+"
        r"|^(?:please\s+)?(?:always|never|don'?t|do not|avoid)\s+\w+"
        r"|^(?:please\s+)?(?:use|prefer|pick|choose|stick with)\b.*\b(?:instead of|rather than|over|not|for all|"
        r"for every|for new|for any|everywhere|by default)\b"
        r"|\b(?:we|i)(?:'ve|\s+have)\s+been\s+(?:using|running|on)\b"
        r"|^please\s+(?:keep|use|stick|prefer|make sure|stay|follow)\b", _I)),
    ("fact", 0.6, re.compile(
        r"\b(?:this|the|our)\s+(?:[\w-]+\s+){0,3}?(?:project|repo|repository|codebase|service|app|api|backend|frontend|"
        r"database|db|team|build|ci|pipeline|server|cluster|library|package|staging|production)\b[^.?!]{0,60}?"
        r"\b(?:uses|use|is|are|runs|lives|has|have|requires|depends on|needs|targets|stores|deploys|talks to)\b"
        rf"|\b(?:is|are)\s+{_PARTICIPLE}\s+(?:in|at|on|by|with|as|from|under|to|via|per|into)\b"
        r"|\b(?:port|url|endpoint|version|branch|path|owner|maintainer|timeout|limit|bucket|region|schema)\s+(?:is|are|=)\s+\S", _I)),
    # Any other statement of how something is, when it names something particular.
    ("fact", 0.5, re.compile(rf"^(?:(?:[\w'./-]+\s+){{1,6}}?(?:{_STATE}|(?:is|are)\s+(?:{_PARTICIPLE}|\w+ed|made|kept|run|set|done))"
                             r"|(?:we|our team)\s+\w+)\b", _I)),
]
_EMPHASIS = re.compile(r"\b(?:important|must|always|never|critical)\b", _I)
_QUESTION = re.compile(r"^(?:what|how|why|where|which|who|whom|whose|when|can|could|would|will|does|do|did|is|are|"
                       r"should|shall|may|might|have|has)\b", _I)
_COMMAND = re.compile(r"^(?:please\s+)?(?:fix|show|list|run|write|add|make|create|explain|tell|give|find|check|open|"
                      r"read|refactor|implement|update|change|delete|remove|rename|try|help|look)\b", _I)
# A line of code the user pasted, not a sentence about the project.
_CODE = re.compile(r"^(?:return|def|import|class|function|fn|pub|public|private|#include|elif)\s+\S|^from\s+\S+\s+import\b"
                   r"|^(?:let|const|var)\s+\w+\s*=|^(?:SELECT|INSERT|UPDATE|DELETE)\s.*\b(?:FROM|INTO|SET|WHERE)\b"
                   r"|[{};]\s*$|\w\([^)]*\)\s*\.\w+\(|\s==?\s.*\(")
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
        s = _LEAD_IN.sub("", raw.strip().strip("-*• ").strip())
        if len(s) < MIN_CHARS or s.endswith("?") or _QUESTION.match(s) or _COMMAND.match(s) or _CODE.search(s):
            continue
        for n, (kind, importance, rule) in enumerate(RULES):
            m = rule.search(s)
            if m is None:
                continue
            if kind == "fact" and (_TRANSIENT.search(s) or _AT_HAND.match(s)
                                   or (n == len(RULES) - 1 and not _SPECIFIC.search(s))):
                break
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
