"""What is worth remembering in a turn: every statement about the project that names something
particular, and nothing else.

Candidacy is broad on purpose: phrasing is open-ended ("Quick note, the target MCU is an
STM32G431", "The PID loop runs at 1 kHz from TIM6"), so a list of phrasings always misses the
next one. What is closed is the small set of things a user turn holds that are NOT facts about
the project, and those are skipped instead. The embedding novelty test (lynkr/memory/store.py)
and retrieval's `min_relevance` (rank.py) then decide what is kept and what is shown.

1. **Text** — the turn's own text (`turn_text`: no `<system-reminder>`, no tool results). Fenced
   code blocks are dropped; so are paragraphs that are mostly not prose (code, logs, tracebacks,
   JSON, diffs, tables, aligned columns, numbered listings, shell sessions), a block of lines right
   after a line ending in ":" ("Here's the output:") unless it is a bullet list, and each line of
   a paragraph that is not prose.
2. **Sentences, then clauses** — sentences split at `.`/`!`/`?` (not after e.g., i.e., etc.), lines
   and bullets; a sentence splits into clauses at `;`, a spaced dash, and before ", but/so/then",
   ", please", ", can you …". Small-talk and discourse lead-ins (a closed class of words) are set
   aside from each clause ("quick note,", "oh and btw", "ok so", "thanks Claude,", "for context,",
   "remember that", "heads up:"); a note lead-in ("remember", "note", "fyi", "heads up", "keep in
   mind", "just so you know", …) marks the clause a note.
3. **Skip** a clause that is (first match):

   | skip        | how it is told                                                                 |
   |-------------|--------------------------------------------------------------------------------|
   | question    | ends with `?`, or opens with a question word or an auxiliary ("can you", "is the …", not "do not", not "what we use …") |
   | condition   | "when/if/once/after …, <main clause>" is a procedure, a rule ("when you add an endpoint, update the spec"), unless the main clause asks or hedges or the condition schedules a task ("when you get a chance, …") |
   | aside, code | opens with "(", or reads as a line of code or output                           |
   | hedge       | "I think", "maybe", "probably", "not sure", "I wonder": an opinion about now   |
   | event       | I/we + a past-tense verb ("I ran", "we tried", "I've added") — not "decided/chose/agreed/switched to/…"; what the user is doing ("I'm trying to …", "I keep seeing …", "I was wondering") |
   | request     | an imperative ("fix …", "write …", "please add …"; a verb the list lacks known by its object: "mount ./src …", "serialize a …"; not "Index rebuilds happen …", a plural subject and its verb, nor "Exit code 2 means …", a noun, a name and its verb), "can/could you", "I want/need you to", "let's <verb>", "no need to", "I'd appreciate" — unless a rule (below) |
   | at hand     | "it/this/that/these/those …" (but "this project/repo/…"), "the function/diff/PR/error/output …", "the 404 means …", "a 500 here means …": the work in front of the model |
   | transient   | a failure or today: "an/the … error", an error class or code ("TypeError", "TS2322"), "fails", "broken", "crash", "seems", "now", "still", "throws", "does nothing", "when I click …", "successfully", "lets … go negative"; of a definition of something named ("HTTP 422 from our API means validation failed") only its subject is read |
   | spec        | "X should …" in a turn that asks for a change: that change's spec              |
   | continuation| "but/so/then …" after a skipped clause ("I ran it, but now it takes 3 s"); a rule that what was just said must not change ("keep those stable", "don't renumber them", "they must never change"), unless it follows a candidate: then it joins it, across a sentence end too ("Exit code 2 means bad usage. Keep those stable, scripts depend on them.") |
   | nothing particular | no number (digits or words), version, path, file, dotfile, identifier, quoted string, acronym, capitalised name inside it or after its lead-in, "called/named X", no "our/we/this project", no "<Name> owns/reviews/leads/does …", no "<noun phrase> is a/our/in …", "<noun phrase> is <done> by/in/…" or "<noun phrase> runs/lives/follows/uses/needs … X", no "<noun phrase> <verb>s <object> with/using/via/through X" (a means: "the binary reports errors with anyhow"; not "the … with a …", not "returns the user with …"), no note lead-in — such a clause is kept only beside one that has them |

   A *rule* states how things are to be done and is exempt from the request, at-hand, transient
   and particular tests: a time-universal marker (always, never, from now on, going forward, by
   default, whenever, usually, as a rule, for/any new …) makes a rule even of a request; a contrast
   or bound (don't, avoid, prefer, instead of, rather than, ", not X", must, only, forbidden,
   required, everywhere, "X should …" outside a task turn) makes one of any clause that is neither a
   request to change something now ("use uv, not poetry" is a rule; "rename X everywhere", "make the
   CLI print A instead of B" and "use a map here" are tasks) nor a report ("the modal closes when I
   click, which it shouldn't"); so do a decision (we decided/chose/agreed/settled
   on/switched to/are going with, let's use/stick with) and "keep/stick with/follow X" when X is
   not "it/this", "remember to …", and a routine step with when it is due (ask/ping/check with/run/
   rebase/… X before/after/whenever doing Y: "ask me before adding a dependency"; not "fix the test
   before merging", a task, nor one about "this/it").
4. **Keep** the rest. Contiguous kept clauses of one sentence stay one candidate ("We never use
   print for logging; we use structlog"); a skipped clause splits them ("Store the token in Vault;
   can you wire it up?" keeps the first half). A sentence that opens naming someone only as
   he/she/they joins the candidate just before it ("Nadia owns ingestion. Ping her before …").

Kind and importance (for ranking ties, not for candidacy): note 0.9 (a note lead-in), decision
0.8, preference 0.7 (a standing marker or I/we prefer/like/want/use), fact 0.6 (our/the
project/we/this repo subject or a particular token); "important", "must", "always", "never",
"critical" add 0.1. A candidate is at most `max_chars` characters (cut at a word), at most
`max_candidates` per turn. `extract` is pure and fast (regexes over one turn); the surprise test that
decides whether a candidate is stored lives in the store, since it compares with what the project
already remembers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from lynkr.kit.harness import strip_harness

__all__ = ["Candidate", "extract", "turn_text", "clauses", "pasted_line"]


@dataclass(frozen=True, slots=True)
class Candidate:
    text: str
    kind: str
    importance: float


_I = re.IGNORECASE
MIN_CHARS = 8
MIN_WORDS = 3

# -- 1. text: what was pasted is not what was said ------------------------------------------------
_FENCE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL)
# A line of code, a log, a traceback, a diff, JSON, a table, a shell session or a numbered listing.
_PASTED = re.compile(
    r"^(?:\s{4,}|\t)\S"                                     # indented block
    r"|^\s*(?:\$ |>>>|\.\.\.|#!|//|/\*|\*/|@@|\+\+\+|---\s|diff --|index [0-9a-f]{6})"
    r"|^\s*[{}\[\]]|^\s*\"[\w-]+\"\s*:|[{;]\s*$"            # JSON / braces / statements
    r"|^\s*\|.*\|\s*$"                                      # table row
    r"|^\s*\d+\s*[\t|:→]\s*\S"                              # numbered listing (cat -n, grep -n)
    r"|^\s*\[?\d{2,4}[-/.]\d\d[-/.]\d\d[ T]\d\d:\d\d|^\s*\[?\d\d:\d\d:\d\d"   # timestamps
    r"|\S {3,}\S|\s\|\s.*\s\|\s"                            # aligned columns
    r"|^\s*\[?(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|CRITICAL)\b[\]:\s]"
    r"|^\s*Traceback \(most recent|^\s*File \"[^\"]+\", line \d|^\s*at [\w$.<>]+\(|^\s*[\w.]*(?:Error|Exception)\b:"
    r"|^\s*(?:E|FAILED|PASSED)\s{1,3}\S|^\s*npm (?:ERR|WARN)!|^\s*(?:error|warning)(?:\[\w+\])?:"
    r"|^\s*[\w./-]+:\d+(?::\d+)?:?\s"                       # path:line: compiler / linter output
    r"|^\s*(?:def|fn|func|function|async def)\s+\w+\s*\(|^\s*(?:class|struct|interface|enum)\s+\w+\s*[:({<]"
    r"|^\s*(?:public|private|protected|static)\s+(?:\w+\s+)*\w+\s*[(<{=]|^\s*(?:const|let|var)\s+\w+\s*[=:]"
    r"|^\s*(?:import\s+[\w.]+(?:\s+as\s+\w+)?|from\s+[\w.]+\s+import\s+\S.*|#include\s*[<\"].*|package\s+[\w.]+;?)$"
    r"|^\s*return\b.*[()\[\];]|^\s*(?:if|for|while|elif|else|try|except|with)\b.*:$"
    r"|^\s*(?:SELECT|INSERT|UPDATE|DELETE|CREATE)\s.*\b(?:FROM|INTO|SET|WHERE|TABLE)\b"
    r"|\w\([^)]*\)\s*\.\w+\(|^\s*[\w.\[\]'\"]+\s*(?:=|\+=|==|:=)\s*\S.*[(){}\[\]'\"]|\s==?\s.*\(")


def pasted_line(line: str) -> bool:
    """Does this line read as pasted output or code rather than something a person wrote?"""
    s = line.strip()
    if not s:
        return False
    if _PASTED.search(line):
        return True
    symbols = sum(not (ch.isalnum() or ch.isspace()) for ch in s)
    return len(s) >= 16 and (symbols / len(s) > 0.3 or (" " not in s and len(s) > 40))


_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(?=\S)")


def _prose_line(line: str) -> bool:
    """A line a person wrote: a bullet item, or words enough, mostly letters, not indented output."""
    if pasted_line(line):
        return False
    if _BULLET.match(line):
        return True
    s = line.strip()
    letters = sum(ch.isalpha() for ch in s)
    return (not line.startswith("  ") and len(re.findall(r"[A-Za-z]{2,}", s)) >= 4
            and letters >= 0.6 * len(s.replace(" ", "")))


def _prose(text: str) -> str:
    """The text without fenced blocks, pasted paragraphs and pasted lines. In a paragraph of several
    lines the lines that are not prose are output (a status, a listing); when they are the majority
    the whole paragraph is, prose-looking lines included ("Your branch is ahead of …")."""
    out, introduced = [], False
    for para in re.split(r"\n\s*\n", _FENCE.sub("\n\n", text)):
        lines = [ln for ln in para.split("\n") if ln.strip()]
        # "Here's the output:" and then a block of lines that are not all prose or list items: pasted.
        quoted, introduced = introduced and len(lines) >= 2 and not all(map(_prose_line, lines)), \
            bool(lines) and lines[-1].rstrip().endswith(":")
        if quoted or not lines:
            continue
        if len(lines) == 1:
            out += [ln for ln in lines if not pasted_line(ln)]
            continue
        prose = [_prose_line(ln) for ln in lines]
        # Typed prose is not indented; a paragraph with an indented line that is not a list's is pasted
        # (git status, a stack of call sites, a config excerpt).
        indented = not any(map(_BULLET.match, lines)) and any(re.match(r"\s{2,}\S", ln) for ln in lines)
        if indented or sum(prose) * 2 < len(lines) or (len(lines) >= 3 and sum(map(pasted_line, lines)) * 2 >= len(lines)):
            continue
        out.append("\n".join(ln for ln, p in zip(lines, prose) if p))
    return "\n".join(out)


# -- 2. sentences and clauses ---------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+|^\s*(?:[-*•]|\d+[.)])\s+", re.M)
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|approx|incl|cf|mr|ms|mrs|dr|no|fig|a\.k\.a)\.|\b[A-Z]\.)$", _I)
# Where a sentence turns to something else: a new clause starts after these.
_CLAUSE_BREAK = re.compile(r"\s*;\s*|\s+[—–]\s+|\s+-{1,2}\s+"
                           r"|,\s+(?=(?:but|so|then|and then|which means)\s)|,\s*(?=(?:please|pls|can you|could you|"
                           r"would you|will you|and can you|and could you|and please|thanks|thank you|just)\b)", _I)


def _sentences(text: str) -> list[str]:
    parts, out = _SENTENCE_END.split(text), []
    for p in parts:
        p = p.strip()
        if not p:
            continue
        if out and _ABBREV.search(out[-1]) and not out[-1].endswith("\n"):
            out[-1] += " " + p
        else:
            out.append(p)
    return out


def clauses(sentence: str) -> list[tuple[int, int]]:
    """(start, end) of each clause of a sentence."""
    spans, start = [], 0
    for m in _CLAUSE_BREAK.finditer(sentence):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(sentence)))
    return [(a, b) for a, b in spans if b > a]


# Discourse lead-ins and small talk, repeated ("Oh and btw, quick note:"): a closed class of words.
_NOTE_WORDS = (r"remember(?: that)?|note(?: that)?|n\.?b\.?|fyi|f\.y\.i\.|keep in mind(?: that)?|for the record|"
               r"heads[- ]up|just so you know|for your information|reminder|important|psa|don'?t forget(?: that)?|"
               r"before i forget|worth (?:noting|knowing)|good to know|fwiw|for what it'?s worth")
# Said with only a space after them ("FYI the port is …", "oh and btw the …").
_LOOSE = (r"oh|and|also|anyway|anyways|actually|btw|by the way|for context|for reference|p\.s\.|ps|side note|"
          r"quick note|small note|a note|just a note|one more thing|another thing|one last thing|quick heads[- ]up|"
          r"so|ok so|okay so|also worth noting")
# Said with a comma, colon or "!" after them ("ok, …", "Thanks! …", "Quick one: …").
_TIGHT = (r"ok|okay|well|alright|all right|right|hmm+|um+|uh|great|cool|nice|perfect|awesome|thanks|thank you|thx|"
          r"yes|yeah|yep|sure|no|nope|hi|hello|hey|context|here|in general|generally|basically|quick|quick one|"
          r"quick thing|small thing|in this (?:repo|project|codebase)|also|one thing|good morning|sorry")
_LEAD = re.compile(rf"^(?:(?P<note>{_NOTE_WORDS})(?!\s+to\b)\b[\s,:;.!—–-]*|(?:{_LOOSE})\b[\s,:;.!—–-]*"
                   rf"|(?:{_TIGHT})(?:\s+[A-Z]\w*)?\s*[,:;.!—–-]+\s*)", _I)


def _lead_in(clause: str) -> tuple[str, bool]:
    """The clause without its lead-ins; whether one of them was a note marker."""
    note = False
    while (m := _LEAD.match(clause)) is not None and 0 < m.end() < len(clause):
        note = note or m.group("note") is not None
        clause = clause[m.end():]
    return clause, note


# -- 3. skipping what is not a fact about the project ---------------------------------------------
_QUESTION = re.compile(r"^(?:what|how|why|where|which|who|whom|whose|when|any idea|is there|are there|"
                       r"(?:can|could|would|will|does|do|did|is|are|was|were|should|shall|may|might|have|has|am)"
                       r"(?!\s+not\b|n'?t\b)\s+\w)", _I)
# How things are to be done from now on: makes a rule even of a request ("from now on, write …").
_RULE_TIME = re.compile(
    r"\b(?:always|never|from now on|going forward|in (?:the )?future|whenever|by default|as a rule|usually|normally|"
    r"typically|by convention|(?:all|every|each|any) new|for new)\b", _I)
# A contrast or a bound ("use uv, not poetry", "must", "only", "avoid"): a rule when it is not a task's.
_RULE = re.compile(
    r"\b(?:don'?t|do not|avoid|prefer(?:s|red)?|rather than|instead of|must(?:n'?t)?|forbidden|not allowed|"
    r"disallowed|prohibited|banned|mandatory|required|only|rather|does not|doesn'?t|shouldn'?t|should not|"
    r"no more than|everywhere|for (?:all|every|each|any)|tend to)\b|,\s*not\s+\w", _I)
# How a change is asked for ("the form should reject …"): the task's spec in a turn that asks for one.
_SHOULD = re.compile(r"\bshould\b(?!\s+(?:not|never|always)\b)", _I)
_DECISION = re.compile(
    r"\b(?:we|i|the team|our team)(?:\s+have|'ve)?\s+(?:decided|chose|agreed|settled on|are going with|will use|"
    r"'ll use|switched to|moved to|migrated to|standardi[sz]ed on|picked|went with)\b"
    r"|\b(?:we|i)(?:'re|\s+are|'m|\s+am)\s+(?:on|using|running|moving to|sticking with|standardi[sz]ed on)\b"
    r"|^let'?s\s+(?:use|go with|keep|stick|always|never|standardi[sz]e)\b", _I)
_PREFERENCE = re.compile(r"\b(?:i|we)(?:'d| would)?\s+(?:really\s+)?(?:prefer|like|rather|love|hate|want|use|"
                         r"avoid|stick|always|never|only|don'?t like)\b|\bi'?d rather\b|\bplease\s+(?:always|never)\b"
                         r"|\b(?:we|i)(?:'ve|\s+have)\s+been\s+(?:using|running|on|deploying|writing)\b", _I)
_KEEP_RULE = re.compile(r"^(?:please\s+)?(?:keep|stick (?:to|with)|follow|stay (?:on|with)|adhere to)\s+(?!it\b|this\b|that\b|"
                        r"them\b|these\b|those\b|going\b|in mind\b)\w", _I)
_REMEMBER_TO = re.compile(r"^(?:(?:please\s+)?(?:remember|make sure|be sure|don'?t forget)\s+(?:to|that you|you)\b)", _I)
_IMPERATIVE = re.compile(
    r"^(?:please\s+|pls\s+|now\s+|then\s+|just\s+|also\s+|first\s+|next\s+|go\s+(?:and\s+)?)*(?:fix|show|list|run|write|add|"
    r"make|create|explain|tell|give|find|check|open|read|refactor|implement|update|change|delete|remove|rename|try|"
    r"help|look|convert|summari[sz]e|port|migrate|split|debug|profile|audit|compare|design|prove|derive|evaluate|"
    r"build|install|set|configure|move|replace|review|test|verify|generate|draft|clean|bump|upgrade|deploy|commit|"
    r"push|revert|undo|merge|rebase|document|describe|analy[sz]e|investigate|optimi[sz]e|speed|improve|extract|"
    r"inline|format|lint|translate|walk|see|search|grep|print|plot|draw|sketch|suggest|propose|recommend|pick|choose|"
    r"use|put|wrap|handle|ensure|send|copy|paste|download|upload|start|stop|restart|kill|skip|ignore|disable|enable|"
    r"turn|switch|cut|trim|reduce|increase|append|insert|sort|filter|parse|validate|fetch|pull|clone|scaffold|"
    r"bootstrap|wire|hook|expose|mock|stub|benchmark|measure|count|calculate|compute|estimate|figure|finish|continue|"
    r"proceed|retry|rerun|redo|do|go|let|get|give|think|consider|assume|imagine|call|keep|stick|follow|write|name|"
    r"threat-model|rewrite|finalize|double-check|sanity-check|prepare|break|combine|reorganize|restructure|"
    r"introduce|drop|rollback|roll|tidy|polish|simplify|shorten|expand|explore|identify|spot|map|trace|"
    r"reproduce|repro|address|resolve|patch|answer|reply|respond|paraphrase|rephrase|list|allow|disallow|deny|grant|"
    r"revoke|mount|unmount|serialize|deserialize|encode|decode|scroll|wait|stash|squash|tag|publish|cache|index|"
    r"sanitize|escape|encrypt|decrypt|hash|sign|authenticate|authorize|render|center|align|resize|compress|zip|"
    r"unzip|schedule|cancel|abort|exit|quit|reload|refresh|reset|clear|flush|seed|populate|load|save|export|import|"
    r"sync|backup|restore|provision|scale|rotate|renew|connect|disconnect|link|unlink|attach|detach|mark|unmark|"
    r"select|query|join|group|count|sum|average|loop|iterate|return|raise|catch|throw|emit|listen|subscribe|"
    r"unsubscribe|print|show|hide|toggle|apply|revert|cherry-pick|checkout|fork|compile|cross-compile|transpile|"
    r"bundle|minify|type-check|typecheck|reformat|annotate|comment|uncomment|log|instrument|trace|time|retry|"
    r"clone|rename|touch|chmod|chown|kill|spawn|fork|pipe|redirect|forward|proxy|route|serve|host|ping|curl)"
    r"\s+(?P<next>\S+)", _I)
# Verbs of a standing instruction ("use X for Y", "put tests next to the code"), unlike ones that change
# something now ("rename X everywhere" is a task, however wide).
_NORM_VERB = re.compile(r"^(?:please\s+)?(?:use|keep|prefer|avoid|stick|follow|put|name|call|write|wrap|log|store|place|"
                        r"format|document|stay|pin|target|default|never|always|don'?t|do not|only)\b", _I)
_STATE_WORD = re.compile(r"^(?:is|are|was|were|has|have|had|can|must|should|will|means?|denotes?|indicates?|signals?|"
                         r"signifies|stands|represents?|lives?|runs?|uses?|goes|go|comes?|"
                         r"sits?|gets?|takes?|needs?|stays?|belongs?|starts?|stores?|points?|depends|follows?|"
                         r"triggers?|live|run|use|come|sit|get|take|need|stay|belong|start|store|point|depend|"
                         r"handles?|owns?|requires?|reads?|writes?|calls?|sends?|listens?|talks?)\b", _I)
_REQUEST = re.compile(r"^(?:(?:and\s+)?(?:can|could|would|will)\s+you|(?:i|we)(?:'d| would)?\s+(?:want|need|like|love)\s+(?:you\s+)?to|"
                      r"i'?d like|let'?s|it would be (?:great|nice)|i'?d appreciate|i would appreciate|any help|(?:there'?s\s+)?no need to|we (?:need|have|want) to|you (?:should|need to|can|could|must))\b", _I)
_HEDGE = re.compile(r"^(?:i (?:think|guess|suspect|wonder|believe|feel|assume|hope)|maybe|perhaps|probably|possibly|"
                    r"not sure|i'?m not sure|it might|might be|could be|i doubt|i'?m curious|just curious|"
                    r"i'?d like to (?:know|understand|learn)|i want to (?:know|understand|learn))\b", _I)
_PAST = re.compile(r"^(?:i|we)(?:'ve|\s+have|\s+had|'d|\s+just|\s+already|\s+also|\s+then)*\s+(?:just\s+)?(?!decided|chose|"
                   r"agreed|settled|switched|moved|migrated|standardi[sz]ed|picked|went with|always|never|only)"
                   r"(?:\w+ed|ran|tried|saw|got|made|wrote|did|found|noticed|pushed|gave|took|broke|set|put|built|"
                   r"read|sent|left|kept|lost|forgot|began|thought|went|came)\b"
                   # what the user is doing or was doing: "I'm trying to …", "I keep seeing …", "I was wondering"
                   r"|^i(?:'m|\s+am|\s+was|\s+keep|\s+kept|\s+have been|'ve been)\s+(?!using\b|running\b|on\b)\w+ing\b"
                   r"|^i\s+was\b|^i(?:'d| would)\s+be\b", _I)
_DEICTIC = re.compile(r"^(?:it|it's|this|that|that's|these|those|here|there|they|he|she|above|below)\b(?!\s+(?:project|repo|"
                      r"repository|codebase|monorepo|service|app|application|company|team|org)\b)"
                      r"|^the\s+(?:\w+\s+)?(?:function|method|diff|pr|patch|snippet|example|answer|error|issue|bug|"
                      r"output|result|change|changes|fix|line|lines|stack ?trace|traceback|previous|last|above|below|"
                      r"same|new one|first one|second one|one)\b"
                      # what the code in front of the model means: "the 404 means …", "a 500 here means …"
                      r"|^(?:the\s+\S*\d\S*|\S+(?:\s+\S+){0,3}\s+(?:here|there))\s+(?:means|indicates|signals)\b", _I)
_TRANSIENT = re.compile(r"\b(?:(?:an|the|this|that|same|weird|new|strange|odd|following|these|those|some)\s+(?:\w+\s+)?"
                        r"(?:errors?|exceptions?|bugs?|warnings?|stack ?traces?)|errors?\s+(?:on|at|in|when|while|from|"
                        r"about|saying)|fail(?:s|ed|ing)?|broken|breaks|crash\w*|buggy|flaky|"
                        r"doesn'?t work|not working|no longer|stopped working|i see|i get|i'?m getting|we'?re getting|"
                        r"seems?|looks like|right now|at the moment|for now|today|yesterday|tonight|this morning|"
                        r"just now|(?<![.])now(?!\()|still|again|anymore|successfully|refuses?|unable to|permission denied|"
                        r"uncaught|not defined|no such file|not assignable|exits? with|exited with|error:|getting|"
                        r"\w+(?-i:Error|Exception)|(?-i:[A-Z]{2,}\d{3,})|does nothing|nothing happens|reports? that|complains?|throws|panics|hangs|segfaults|times? out|blows up|"
                        r"when i \w+|wrong|incorrect(?:ly)?|unexpected(?:ly)?|weird|strange|lets\s+\S+\s+(?:go|be|become|"
                        r"drop|get))\b", _I)
# Something particular: a number or version, a path, file or URL, an identifier (snake_case,
# camelCase, dotted, a prefix like `veh_`), an acronym (MCU, USART2), a quoted or backticked string,
# or a capitalised word inside the clause (a product, a person, a team).
_PARTICULAR = re.compile(r"\d|[\w.-]+/[\w./-]*|\b\w+\.\w{1,5}\b|(?<![\w.])\.[\w-]{2,}|\b[a-z]+_\w*|\b[a-z]+[A-Z]\w*"
                         r"|\b[A-Z]{2,}\w*|[`'\"][^`'\"]{2,}[`'\"]|(?<=\w[\s,(])[A-Z][\w+#-]+"
                         r"|\b(?:called|named|known as|aliased)\s+\S|\b(?:two|three|four|five|six|seven|eight|nine|ten|"
                         r"eleven|twelve|fifteen|twenty|thirty|forty|fifty|hundred|thousand|million|twice)\b")
# A standing fact without a particular token: "the positions table is partitioned by day", "versions
# follow semver". A noun-phrase subject (no pronoun: those are the work at hand), then a verb of how
# things are set up, or a passive of how they are done, with its complement.
_SETUP = re.compile(r"^(?:the\s+|our\s+|all\s+|every\s+|each\s+)?(?!(?:i|you|it|this|that|these|those|they|he|she|we|"
                    r"there|here)\b)(?:(?!(?:i|you|it|they|he|she|we)\b)[\w'-]+\s+){0,6}?(?:(?:is|are)\s+(?:just\s+|only\s+|always\s+)?(?:a|an|our)\s+\w|"
                    r"(?:is|are)\s+(?:in|on|under|behind|inside)\s+\w|(?:is|are)\s+(?:\w+ed|\w+en|built|kept|made|run|set|done|"
                    r"held|shown|sent|put|split|spread)\s+(?:by|in|at|on|with|from|to|under|per|via|as|into|through|"
                    r"for|before|after|every|once|daily|nightly|weekly|hourly|monthly)\b|(?:lives?|runs?|follows?|"
                    r"triggers?|goes|go|comes?|sits?|belongs?|lands?|deploys?|ships?|publishes|publish|reads?|writes?|"
                    r"stores?|uses?|depends on|depend on|owns?|handles?|talks? to|points? to|listens? on|shares?|share|contains?|"
                    r"includes?|exposes?|requires?|extends?|wraps?|calls?|generates?|imports?|serves?|sends?|needs?|takes?|"
                    r"gets?|expects?|supports?|accepts?|produces?|emits?|holds?|keeps?)\s+\w)", _I)
# How a part of the project does its job: what it does it with ("the binary reports errors with
# anyhow", "the worker retries jobs with exponential backoff", "the frontend fetches data using
# react-query"). A tool's name is often a plain lowercase word, so the construction tells, not the
# name: a verb with its object (not "the …": "returns the user with missing fields" says which user),
# then the means. "The page loads with a blank screen" and "the build finishes with warnings" (no
# object) are how something behaves; the code, the script, the new version at hand is not the project.
_BY_MEANS = re.compile(r"^(?!(?:(?:the|our|all|every|each)\s+)?(?:i|you|it|this|that|these|those|they|he|she|"
                       r"we|there|here|my|your|code|script|program|snippet|query|loop|implementation|current|above|"
                       r"following|new|old|updated|original|existing|changed|modified|fixed)\b)(?:[\w'-]+\s+){1,5}?"
                       r"(?!(?:is|has|was|does)\b)[a-z]+(?<![su]s)s\s+(?!(?:the|a|an|this|that|these|those)\b)"
                       r"(?:[\w'-]+\s+){1,4}?(?:with|using|via|through)\s+(?!(?:a|an|the|this|that|these|those|some|no|"
                       r"my|your|its|his|her|their|it|them|me|us)\b)[\w-]", _I)
# Said of the project itself or of what belongs to it ("Kafka is our message bus", "we deploy on Fridays").
_OWNED = re.compile(r"\b(?:our|we|we're|we've|the team|this (?:project|repo|repository|codebase|service|app)|the "
                    r"(?:project|repo|repository|codebase))\b", _I)
# Who does what: a capitalised name, then a verb of a role ("Ingrid from compliance reviews every
# change", "Bogdan designed the board"). A capital elsewhere at the start is only the sentence's.
_ROLE = re.compile(r"^[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?(?:\s+(?:from|in|on|at)\s+(?:the\s+)?[\w-]+)?\s+(?:owns|reviews|"
                   r"approves|maintains|manages|leads|handles|runs|builds|deploys|hosts|designed|wrote|built|set up|"
                   r"knows|decides|answers|triages|signs off|is responsible|are responsible|does|works on)\b")
_EMPHASIS = re.compile(r"\b(?:important|must|always|never|critical)\b", _I)


def _request(c: str) -> bool:
    """An imperative or a request aimed at the task in front of the model."""
    if _REQUEST.match(c):
        return True
    m = _IMPERATIVE.match(c)
    if m is None:
        # A verb the list lacks, known by its object: "Mount the volume", "Serialize a struct" (a
        # subject is followed by its verb, never directly by "the").
        return _VERB_OBJECT.match(c) is not None
    # "Build is done with Bazel", "Test fixtures live in tests/": a noun, not a verb, opens the clause.
    words = c[m.end():].split()
    after = words[0] if words else ""
    if (m.group("next").endswith("s") and not _LINK_WORD.match(m.group("next")) and after.isalpha() and after.islower()
            and not _LINK_WORD.match(after)):
        return False        # "Index rebuilds happen nightly", "Log files rotate daily": a plural subject, its verb
    # A name may follow the noun ("Exit code 2 means …", "Log level DEBUG is …"), but "check port 8080
    # is free" asks to check that it is.
    named = next((w for w in words if not _NAME_TOKEN.match(w)), "")
    if (named != after and named.endswith("s") and not _LINK_WORD.match(m.group("next"))
            and not _THAT_VERB.match(c[:m.start("next")].split()[-1])):
        after = named
    return not _STATE_WORD.match(m.group("next")) and not (after.islower() and _STATE_WORD.match(after))


_THAT_VERB = re.compile(r"^(?:check|verify|ensure|confirm|test|assert|see|assume|imagine|consider|prove|make|"
                        r"double-check|sanity-check|figure|find|tell|explain)$", _I)
_NAME_TOKEN = re.compile(r"^(?:[`'\"].*|\S*\d\S*|[A-Z]{2,}\S*)$")      # 2, `--out`, DEBUG, v1.2


_FUNCTION_WORD = (r"the|a|an|this|that|these|those|it|its|we|i|our|my|your|you|they|their|he|she|his|her|there|here|"
                  r"all|every|each|some|any|no|none|so|and|but|or|if|when|while|because|also|then|now|just|only|"
                  r"what|which|who|how|why|where|both|either|one|in|on|at|for|from|with|by|to|of|after|before|"
                  r"since|until|once|as|not|max|min|most|more|less|every|everything|nothing|someone|nobody")
_VERB_OBJECT = re.compile(rf"^(?!(?:{_FUNCTION_WORD})\b)[A-Za-z][\w-]*\s+(?:(?:the|a|an|my|our|your|this|that|these|"
                          r"those|it|them|me|us|all|every|each|some|any|just)\b|\.{0,2}/|~/)", _I)
_LINK_WORD = re.compile(rf"^(?:{_FUNCTION_WORD}|into|onto|over|under|between|through|using|via|without|across|against|"
                        r"per|instead|than|like|that|which|who|whose|whenever|locally|first|again|too)$", _I)
# Words after "who/which/that" belong to a relative clause: "users who have never ordered" sets no rule.
_RELATIVE_CLAUSE = re.compile(r"\b(?:who|which|that|whose)\b.*", _I)


# A question inverts ("what do we use"); "what we use for auth is Keycloak", "how we deploy: …" state.
_RELATIVE = re.compile(r"^(?:what|how|where|when|why|which)\s+(?:we|i|you|they|our|my)\b", _I)
# A condition before the main clause: "when deploying, …", "if you touch the schema, …".
_CONDITION = re.compile(r"^(?:when|whenever|where|if|once|before|after|unless)\b[^,?]{2,80},\s*", _I)
_SCHEDULING = re.compile(r"^(?:when|once|after|if)\s+(?:you(?:'re| are)?\s+(?:get a chance|can|have (?:a minute|time)|"
                         r"done|finished|finish|free|ready|at it)|you'?ve (?:done|finished)|that'?s? |this |it'?s |possible|"
                         r"needed|necessary)", _I)
_LABEL = re.compile(r"^[A-Za-z][\w .-]{1,30}:\s*\S*\d")      # "Port: 5433"
WEAK = ("fact", 0.0)     # a statement naming nothing particular: kept only beside one that does


_HERE = re.compile(r"\b(?:here|this|that|it|these|those|above|below)\b", _I)
# A step said with when it is due ("ask me before adding a dependency", "run the linter before
# committing", "check with Omar before you touch the cron"): a procedure like a leading "before
# committing, …", not a task for now. Only steps that are routines (ask, ping, run, rebase, …): "fix
# the test before merging" is a task.
_PROCEDURE = re.compile(
    r"^(?:please\s+)?(?:always\s+)?(?:ask|ping|check(?:\s+with)?|talk\s+to|tell|notify|consult|loop\s+in|message|email|"
    r"run|rebase|squash|lint|format|sign|tag|get\s+(?:approval|sign-off|a review))\b"
    r".*\b(?:before|after|whenever|every time)\s+(?:(?:you|we|anyone)\s+\w+|\w+ing)\b", _I)


def task_request(c: str) -> bool:
    """A clause asking for a change now (not a standing "use X" / "keep Y"; "use a map here" is one)."""
    return _request(c) and (not _NORM_VERB.match(c) or _HERE.search(c) is not None) and not _keeps_as_is(c)


# A rule that what was just stated must not change: "keep those stable", "don't renumber them", "they
# must never change". It points back ("those"), so it is kept only with the statement before it.
_AS_IS = re.compile(
    r"^(?:please\s+)?(?:keep|leave)\s+(?:it|them|this|that|these|those|both|all of them|each of them)\s+(?:stable|"
    r"unchanged|as (?:is|it is|they are)|the same|intact|fixed|frozen|backwards?[- ]compatible|in sync|that way)\b"
    r"|^(?:please\s+)?(?:don'?t|do not|never)\s+(?:ever\s+)?(?:change|rename|renumber|reorder|reuse|remove|touch|"
    r"break|modify|alter|delete|drop)\s+(?:it|them|this|that|these|those|either|any of them)\b"
    r"|^(?:it|they|this|that|these|those)\s+(?:must|should|can|need to|needs to|has to|have to)\s+(?:not\s+|never\s+)?"
    r"(?:stay|remain|be kept)\s+(?:stable|unchanged|as (?:is|it is|they are)|the same|fixed|frozen)\b"
    r"|^(?:it|they|this|that|these|those)\s+(?:must|should|can)(?:\s*not|n'?t|\s+never)\s+(?:ever\s+)?(?:change|"
    r"be changed|be renamed|be renumbered|be reused|break)\b", _I)
_ALSO_ASKS = re.compile(r",|;|\band\b|\bthen\b|\bbut\b", _I)


def _keeps_as_is(c: str) -> bool:
    """A rule that the statement before must not change, asking for nothing else ("keep those stable,
    people's scripts depend on them"; not "keep it as is and add a test")."""
    m = _AS_IS.match(c)
    return m is not None and not any(_request(_lead_in(p.strip())[0]) for p in _ALSO_ASKS.split(c[m.end():]) if p.strip())


# What a named code or value stands for ("Exit code 2 means bad usage", "HTTP 422 from our API means
# validation failed") is a standing fact whatever failure it names; only its subject can be a report
# ("getting a 500 on login means …"; "the 500 means …" is the one at hand, _DEICTIC).
_DEFINITION = re.compile(r"^(?P<subject>(?:\S+\s+){1,6}?)(?:means|"
                         r"indicates|signals|signifies|denotes|stands for|represents)\s+\w", _I)


def _reported(c: str) -> str:
    """The part of a clause that could report a failure: a definition's subject, else all of it."""
    m = _DEFINITION.match(c)
    return m["subject"] if m is not None and _PARTICULAR.search(m["subject"]) else c


def _kind(c: str, note: bool, in_task: bool = False, said: str = "") -> tuple[str, float] | None:
    """(kind, importance) of a clause worth keeping, WEAK, or None: the skip table of the docstring.
    `in_task`: the turn asks for a change, so "X should …" is that change's spec, not a rule.
    `said`: the clause with its lead-in ("Btw Ingrid reviews …": a capital after "Btw" is a name)."""
    if (len(c.split()) < MIN_WORDS and not _LABEL.match(c)) or c.rstrip().endswith("?"):
        return None
    if (m := _CONDITION.match(c)) is not None:
        # "When you add an endpoint, update the spec", "if the build fails, check X": a procedure, a
        # rule. "When you get a chance, fix …" schedules a task; a main clause may ask or hedge.
        main = c[m.end():]
        if _QUESTION.match(main) or _SCHEDULING.match(c) or _HEDGE.match(main) or _DEICTIC.match(main):
            return None
        return ("note", 0.9) if note else ("preference", 0.7)
    elif _QUESTION.match(c) and not _RELATIVE.match(c):
        return None
    if c.startswith("(") or pasted_line(c) or _HEDGE.match(c) or _PAST.match(c):
        return None
    decision, preference = _DECISION.search(c), _PREFERENCE.search(c)
    ruled = _RELATIVE_CLAUSE.sub("", c) if _request(c) else c
    standing = _RULE_TIME.search(ruled) or _KEEP_RULE.match(c) or _REMEMBER_TO.match(c)
    if standing is None and _request(c) and not _HERE.search(c):
        standing = _PROCEDURE.search(c)
    # A contrast or bound makes a rule, but not of a report ("the modal closes when I click, which it
    # shouldn't") nor of a task ("make it print A instead of B").
    transient = _TRANSIENT.search(_reported(c))
    if (standing is None and not task_request(c) and not transient
            and (_RULE.search(c) or (_SHOULD.search(c) and not in_task))):
        standing = True
    if decision is None and standing is None:
        if _request(c) or _DEICTIC.match(c) or transient or _SHOULD.search(c):
            return None
        # Said to be remembered ("Note: …"), or naming something particular, or how things are set up.
        if not (note or preference or _PARTICULAR.search(said or c) or _ROLE.match(c) or _SETUP.match(c)
                or _BY_MEANS.match(c) or _OWNED.search(c)):
            return WEAK
    if note:
        return "note", 0.9
    if decision is not None:
        return "decision", 0.8
    if standing is not None or preference is not None:
        return "preference", 0.7
    return "fact", 0.6 if _OWNED.match(c) or _PARTICULAR.search(c) else 0.5


# -- 4. keeping -----------------------------------------------------------------------------------
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


_RANK = ("fact", "preference", "decision", "note")


_CONTINUES = re.compile(r"^(?:but|so|then|and then|which means)\b", _I)
_POINTS_BACK = re.compile(r"\b(?:he|she|him|her|his|they|them|their)\b", _I)


def _from_sentence(s: str, in_task: bool, follows: bool) -> tuple[list[Candidate], Candidate | None, bool]:
    """The candidates of one sentence: each run of contiguous kept clauses is one candidate (a WEAK
    clause joins a run, a run of WEAK clauses alone is dropped; "but/so/then …" goes the way of the
    clause it continues: "I ran it, but now it takes 3 s" is one event; "keep those stable" goes the
    way of the statement it points back to, in this sentence or, when it opens it and `follows`, the
    one before; so does an opening clause that names someone only as he/she/they). Also returned:
    the text that continues the sentence before, and whether this one ends in a candidate."""
    runs, run, skipped = [], None, False      # run: [start, end, (kind, importance), strong, continues]
    for i, (a, b) in enumerate(clauses(s)):
        raw = s[a:b]
        c, note = _lead_in(raw.strip().strip("-*• ").strip())
        kept, as_is = None, _keeps_as_is(c)
        if as_is:       # alone, "don't change that" says nothing
            kept = ("preference", 0.7) if run is not None and run[3] or i == 0 and follows else None
        elif c.strip() and not (skipped and _CONTINUES.match(raw.strip())):
            kept = _kind(c.strip(" ,:"), note, in_task, raw.strip())
        # "hey, so the staging backend is …": an interjection split off before ", so" is no clause
        # for "so …" to continue.
        skipped = kept is None and len(c.split()) >= MIN_WORDS
        if kept is None:
            run = None
            continue
        start = a + raw.find(c)
        if run is None:
            # "Nadia owns ingestion. Ping her before touching the consumer": "her" is only Nadia
            # with the sentence before.
            back = i == 0 and follows and _POINTS_BACK.search(c) is not None
            run = [start, b, kept, False, as_is or back]
            runs.append(run)
        run[1] = b
        if kept is not WEAK:
            run[3] = True
            run[2] = kept if run[2] is WEAK else max(run[2], kept, key=lambda k: _RANK.index(k[0]))
    found, joined = [], None
    for start, end, (kind, importance), strong, continues in runs:
        text = s[start:end].strip(" ,:;-")
        if not strong or len(text) < MIN_CHARS:
            continue
        if _EMPHASIS.search(text):
            importance = min(1.0, importance + 0.1)
        if continues:
            joined = Candidate(text[0].upper() + text[1:], kind, importance)
        else:
            found.append(Candidate(text[0].upper() + text[1:], kind, importance))
    ends_kept = run is not None and run[3] and len(s[run[0]:run[1]].strip(" ,:;-")) >= MIN_CHARS
    return found, joined, ends_kept


def extract(text: str, *, max_chars: int = 500, max_candidates: int = 8) -> list[Candidate]:
    """The candidate memories stated in `text`, in order, at most `max_candidates`."""
    out: list[Candidate] = []
    sentences = _sentences(_prose(text[: max_chars * max_candidates * 4]))
    in_task = any(task_request(_lead_in(s[a:b].strip())[0]) for s in sentences for a, b in clauses(s))
    follows = False
    for s in sentences:
        found, joined, follows = _from_sentence(s, in_task, follows)
        if joined is not None and out:
            last = out[-1]
            out[-1] = Candidate(_cut(f"{last.text} {joined.text}", max_chars),
                                max(last.kind, joined.kind, key=_RANK.index), max(last.importance, joined.importance))
        for c in found:
            out.append(Candidate(_cut(c.text, max_chars), c.kind, c.importance))
            if len(out) >= max_candidates:
                return out
    return out
