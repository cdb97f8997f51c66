"""The score's dimensions: each reads the user's ask (or the conversation) and returns a value in
[0, 1] plus the evidence it found; the stage multiplies by the dimension's weight.

Vocabulary is matched on word boundaries ("reproduction" is not "production") and risk and
reasoning words are skipped when a negation governs them ("not a security issue"). The word
lists name general classes — verbs of increasing scope, reasoning and risk vocabulary — not
phrases from any evaluation set; docs/routing.md explains each one.
"""
from __future__ import annotations

import re
from typing import Callable

try:   # the regex parser, to read each vocabulary word's literal head
    from re import _parser as _sre_parser
    from re._constants import BRANCH as _BRANCH, LITERAL as _LITERAL, SUBPATTERN as _SUBPATTERN
except ImportError:     # pragma: no cover - a Python without it only loses the shortcut
    _sre_parser = None

from lynkr.routing.text import Conversation

__all__ = ["DIMENSIONS", "measure", "is_negated", "words", "Vocabulary"]

_I = re.IGNORECASE
MAX_SCAN_CHARS = 6000


def words(*alternatives: str) -> "Vocabulary":
    # Not inside a dotted or hyphenated name: "Store.remove", "auth.py", "non-security".
    # Matched against the lower-cased ask (one lower() beats IGNORECASE on every pattern).
    return Vocabulary(re.compile(r"(?<![./_-])\b(?:" + "|".join(alternatives) + r")\b"), _starts_of(alternatives))


class Vocabulary:
    """A `words` pattern that reads a text only where a match can start. A match starts where a
    run of word characters starts (the pattern opens with \\b and each alternative with a word
    character) and begins with its alternative's literal head, so only the words of the text that
    begin with one of those heads (their first `_HEAD` characters) are tried, each with one
    `match` at its start. Trying those starts in order finds the same matches `finditer` and
    `search` find (the leftmost match at or after where the last one ended), so the score is the
    same; a short ask no longer pays ~40 regex scans of every position (most of `measure` on a
    one-line turn), and a long one pays a match per candidate word instead of a scan per pattern."""

    __slots__ = ("rx", "heads")

    def __init__(self, rx: re.Pattern, heads: frozenset[str] | None):
        self.rx = rx
        # None: some alternative has no literal head (or the pattern captures): always scan.
        self.heads = heads if rx.groups == 0 else None

    def _starts(self, text: str):
        """Where a match can start, in order (empty when no word of `text` begins with a head)."""
        last = _last_starts
        at = last[1] if last[0] is text else _word_starts(text)
        heads = self.heads
        if heads.isdisjoint(at):
            return ()
        common = heads.intersection(at)
        if len(common) == 1:
            (head,) = common
            return at[head]
        return sorted(set().union(*[at[h] for h in common]))

    def finditer(self, text: str):
        if self.heads is None:
            return self.rx.finditer(text)
        starts = self._starts(text)
        return self._iter(text, starts) if starts else _NOTHING

    def _iter(self, text: str, starts: list[int]):
        match = self.rx.match
        end = 0
        for p in starts:
            if p >= end:
                m = match(text, p)
                if m is not None:
                    end = m.end()
                    yield m

    def findall(self, text: str) -> list[str]:
        return [m.group(0) for m in self.finditer(text)]

    def search(self, text: str):
        if self.heads is None:
            return self.rx.search(text)
        match = self.rx.match
        for p in self._starts(text):
            m = match(text, p)
            if m is not None:
                return m
        return None

    def match(self, text: str):
        if self.heads is None:
            return self.rx.match(text)
        return self.rx.match(text) if 0 in self._starts(text)[:1] else None


_HEAD = 3
_WORD_RUN = re.compile(r"\w+")
_IS_WORD_CHAR = re.compile(r"\w")
_last_starts: tuple = (None, {})
_NOTHING = iter(())


def _word_starts(text: str) -> dict[str, list[int]]:
    """{the first 1.._HEAD characters of a run of word characters: where such runs start, in
    order}; the vocabularies of one ask share the last text's (by identity)."""
    global _last_starts
    last = _last_starts
    if last[0] is text:
        return last[1]
    at: dict[str, list[int]] = {}
    for m in _WORD_RUN.finditer(text):
        w = m.group()
        p = m.start()
        for h in (w[:1], w[:2], w[:3]) if len(w) >= 3 else (w[:1], w[:2]) if len(w) == 2 else (w,):
            got = at.get(h)
            if got is None:
                at[h] = [p]
            else:
                got.append(p)
    _last_starts = (text, at)
    return at


class _Needing:
    """A pattern every match of which holds one of `needles` (literal substrings) or a match of
    `hint` (a pattern cheaper than it): a text with none is not scanned. Most asks, and nearly all
    of a tool loop's one-line turns, hold no `=`, `{`, backtick or path, so the code and name
    patterns (each a scan with backtracking at every position) are mostly skipped."""

    __slots__ = ("rx", "needles", "hint")

    def __init__(self, rx: re.Pattern, *needles: str, hint: re.Pattern | None = None):
        self.rx = rx
        self.needles = needles
        self.hint = hint

    def _may_match(self, text: str) -> bool:
        return any(map(text.__contains__, self.needles)) or (self.hint is not None and bool(self.hint.search(text)))

    def search(self, text: str):
        return self.rx.search(text) if self._may_match(text) else None

    def findall(self, text: str) -> list:
        return self.rx.findall(text) if self._may_match(text) else []


def _starts_of(alternatives) -> frozenset[str] | None:
    heads: set[str] = set()
    for alt in alternatives:
        try:
            got = _seq_heads(list(_sre_parser.parse(alt)))
        except Exception:
            return None
        if not got:
            return None
        heads |= {h[:_HEAD] for h in got}
    return frozenset(heads)


def _seq_heads(items: list) -> set[str] | None:
    """The literal word-character heads a parsed sequence can start with; None if it can start
    otherwise (a class, an optional part, a non-word character, an empty branch)."""
    head = ""
    for op, av in items:
        if op is _LITERAL and _IS_WORD_CHAR.match(chr(av)):
            head += chr(av)
            continue
        if head:
            break
        if op is _SUBPATTERN:
            return _seq_heads(list(av[-1]))
        if op is _BRANCH:
            out: set[str] = set()
            for branch in av[1]:
                got = _seq_heads(list(branch))
                if not got:
                    return None
                out |= got
            return out
        return None
    return {head} if head else None


# -- action verbs, by how much work they ask for ------------------------------------------------
# Each class is the value the dimension takes when its strongest verb is in that class.
ACTION_CLASSES: list[tuple[str, float, re.Pattern]] = [
    ("design", 1.0, words(
        r"design(?:s|ing)?", r"architect(?:s|ing)?", r"re-?architect\w*", r"evaluat(?:e|es|ing)", r"audit(?:s|ing)?",
        r"assess(?:es|ing)?", r"threat[- ]model\w*", r"prove", r"derive", r"formali[sz]e", r"compare",
        r"critique", r"choose between", r"decide between", r"analy[sz]e", r"reason (?:through|about)",
        r"justify", r"argue", r"work out", r"determine whether", r"show (?:that|whether|why)", r"weigh",
        r"recommend", r"think (?:about|through|hard|carefully)",
        r"explain (?:the )?(?:trade-?offs?|implications|risks|consequences)")),
    ("build", 0.75, words(
        r"implement(?:s|ing)?", r"refactor\w*", r"migrat(?:e|es|ing)", r"port(?:ing)?", r"restructur\w*",
        r"rewrit(?:e|es|ing)", r"redesign\w*", r"debug(?:s|ging)?", r"diagnos(?:e|ing)", r"investigat\w*",
        r"troubleshoot\w*", r"profil(?:e|ing)", r"optimi[sz](?:e|ing)", r"integrat(?:e|ing)", r"split(?:ting)?",
        r"consolidat\w*", r"overhaul\w*", r"moderni[sz]\w*", r"paralleli[sz]\w*", r"instrument(?:ing)?",
        r"build", r"review", r"harden", r"upgrad(?:e|ing)", r"switch over", r"build out", r"set up", r"automate",
        r"decouple", r"scale", r"propose", r"plan", r"speed up")),
    ("edit", 0.45, words(
        r"add(?:s|ing)?", r"write", r"writing", r"creat(?:e|ing)", r"generat(?:e|ing)", r"renam(?:e|ing)",
        r"updat(?:e|ing)", r"chang(?:e|ing)", r"modif(?:y|ying)", r"fix(?:es|ing)?", r"remov(?:e|ing)",
        r"delet(?:e|ing)", r"replac(?:e|ing)", r"test", r"document", r"format", r"summari[sz]e", r"translat(?:e|ing)",
        r"extract", r"mov(?:e|ing)", r"sort", r"pars(?:e|ing)", r"configur(?:e|ing)", r"install", r"make",
        r"convert\w* (?:this|the|it|these|my|our)", r"clean up", r"type hints?", r"docstrings?",
        r"(?:we|i) (?:need|want)(?! to know)")),
    ("lookup", 0.15, words(
        r"what", r"which", r"where", r"when", r"who", r"how", r"show", r"list", r"tell", r"print", r"convert",
        r"define", r"mean(?:s|ing)?", r"explain", r"describe", r"difference", r"check")),
]

# -- scope: breadth words, enumerations, several steps, several components ----------------------
_WIDE = words(r"across", r"all (?:[\w.-]+ ){0,2}[\w-]+s", r"every", r"entire", r"whole", r"everywhere", r"throughout", r"codebase",
               r"repo(?:sitory)?", r"project-wide", r"end[- ]to[- ]end", r"system-wide", r"globally",
               r"multiple", r"several", r"each of")
_STEP = words(r"then", r"after that", r"afterwards", r"finally", r"first", r"next", r"including", r"with tests",
               r"and (?:then )?(?:update|fix|add|make|write|run|check|verify|document|design|propose|recommend|explain|"
               r"restructure|move|migrate|set up|deploy|measure|benchmark|test|integrate|remove|rename|wire|port)",
               r"keep(?:ing)? (?:the |all |our |it )?[\w ]{0,30}(?:working|green|passing|identical|compatible)",
               r"backwards? compatib\w*", r"without (?:breaking|downtime)", r"during the (?:transition|migration)")
_COMPONENT = words(
    r"api", r"apis", r"endpoints?", r"databases?", r"db", r"quer(?:y|ies)", r"schemas?", r"clients?", r"sdks?",
    r"servers?", r"services?", r"modules?", r"handlers?", r"layers?", r"frontend", r"backend", r"ui", r"cli",
    r"workers?", r"queues?", r"caches?", r"pipelines?", r"config(?:uration)?s?", r"docs", r"documentation",
    r"tests?", r"suites?", r"fixtures?", r"logs?", r"nginx", r"proxy", r"load balancer", r"containers?",
    r"kubernetes", r"ci", r"deploy(?:ment)?s?", r"imports", r"dependenc(?:y|ies)", r"packages?", r"routes?",
    r"middleware", r"auth(?:entication)? flow", r"storage", r"websockets?", r"threads?", r"processes")
# Objects that are whole systems rather than a line or a function.
_LARGE = words(r"services?", r"systems?", r"app(?:lication)?s?", r"frontend", r"backend", r"layers?", r"flows?",
                r"pipelines?", r"architectures?", r"infrastructure", r"platform", r"suites?", r"codebase",
                r"monolith", r"monorepo", r"support", r"microservices?", r"stack", r"workers?", r"framework")
# Objects no bigger than a function: the task is local however it is phrased.
_SMALL = words(r"functions?", r"variables?", r"docstrings?", r"one-liners?", r"lines?", r"snippets?", r"regex(?:es)?",
                r"commands?", r"type hints?", r"comments?", r"methods?", r"\.gitignore", r"readme", r"typos?",
                r"unit tests?", r"a test", r"loop", r"constants?", r"arguments?", r"parameters?")
_TRANSFORM = _Needing(re.compile(r"\bfrom\s+[\w.+#/ -]{1,40}?\s+to\s+\w"), "from")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.MULTILINE)

# -- reasoning markers ----------------------------------------------------------------------------
_REASON_STRONG = words(
    r"prov(?:e|ing)", r"proofs?", r"deriv(?:e|ing|ation)", r"justif(?:y|ies|ication)", r"trade-?offs?",
    r"threat[- ]model\w*", r"invariants?", r"formal(?:ly)?", r"asymptotic(?:ally)?", r"linearizab\w*",
    r"reason (?:through|about|carefully)", r"with reasoning", r"analy[sz](?:e|es|ing|is)", r"evaluat(?:e|ion)",
    r"compar(?:e|ison)", r"versus", r"vs\.?", r"pros and cons", r"correctness", r"guarantees?",
    r"failure modes?", r"consistency model", r"time and space", r"(?:time|space) complexity", r"worst[- ]case",
    r"recommend(?:ation)?", r"root cause", r"audit(?:s|ing)?", r"assess(?:ment)?", r"interleavings?",
    r"critique", r"soundness", r"refut(?:e|ing)", r"correct under", r"safety and liveness",
    r"(?:is|are|be|remains?) (?:safe|correct|sound|consistent) (?:under|when|if|against)",
    r"design (?:a|an|the|our)", r"architect\w*", r"choose between", r"decide between", r"weigh(?:s|ing)?",
    r"failure (?:handling|cases?|scenarios?)", r"memory model", r"big-o",
    r"thread-safe(?:ty)?", r"correctness argument", r"counter-?example", r"hypothes[ie]s", r"evidence",
    r"distinguish", r"(?:security|privacy|performance|scalability) implications", r"terminat(?:es|ion)",
    r"walk (?:me |us )?through", r"think (?:about|through|hard|carefully)", r"attack surface",
    r"probabilit(?:y|ies)", r"expected (?:number|value)", r"collisions?", r"decide whether", r"estimate")
_REASON_WEAK = words(
    r"why", r"strateg(?:y|ies)", r"architectures?", r"algorithms?", r"protocol", r"scheme", r"design",
    r"implications?", r"subtle", r"risks?", r"edge cases?", r"which (?:is|one) (?:better|best)", r"should (?:we|i)",
    r"pick one", r"decisions?", r"constraints?", r"approach(?:es)?", r"alternatives?", r"is it possible",
    r"prevent\w*", r"could happen")

# -- risk domains -----------------------------------------------------------------------------------
RISK_DOMAINS: dict[str, re.Pattern] = {
    "security": words(
        r"secur(?:e|ity)", r"vulnerab\w*", r"exploit\w*", r"attack(?:er|ers|s)?", r"csrf", r"xss", r"injection",
        r"authenticat\w*", r"authori[sz]ation", r"session fixation", r"privilege\w*", r"sandbox\w*", r"secrets?",
        r"credentials?", r"encrypt\w*", r"decrypt\w*", r"passwords?", r"threats?", r"malicious", r"untrusted",
        r"user-supplied", r"cve", r"tokens? storage", r"cryptograph\w*", r"weakness(?:es)?", r"key rotation",
        r"permissions?", r"rbac", r"oauth", r"jwt", r"pii", r"attack surface", r"abus(?:e|ed|ing)"),
    "concurrency": words(
        r"concurren\w*", r"race conditions?", r"races?", r"deadlocks?", r"lock-free", r"mutex\w*", r"atomic\w*",
        r"thread-safe\w*", r"interleavings?", r"linearizab\w*", r"double[- ]\w+ing", r"idempoten\w*",
        r"exactly-once", r"at-least-once", r"retr(?:y|ies)", r"locking", r"memory model", r"volatile",
        r"happens-before", r"at the same time", r"simultaneous\w*", r"at once",
        r"two (?:requests|users|threads|processes|workers|clients|transactions)"),
    "data": words(
        r"data loss", r"los(?:e|ing) data", r"corrupt\w*", r"migrations", r"schema migrations?",
        r"database migrations?", r"data migrations?", r"zero-downtime", r"shard\w*", r"replicas?", r"replication",
        r"failover", r"consisten(?:cy|t)", r"stale", r"transactions?", r"ledger", r"backups?", r"durab\w*",
        r"isolation levels?"),
    "distributed": words(
        r"distributed", r"multi-region", r"clusters?", r"consensus", r"network partitions?", r"kafka",
        r"rebalanc\w*", r"eventual(?:ly)? consisten\w*", r"cache invalidation", r"split[- ]brain",
        r"leader election", r"clock skew", r"quorum", r"leases?", r"fencing", r"byzantine", r"gossip", r"raft",
        r"paxos", r"active-active", r"crdts?", r"vector clocks?"),
    "money": words(r"payments?", r"billing", r"charg(?:e|es|ed|ing)", r"invoices?", r"refunds?", r"money",
                    r"financial"),
    "production": words(r"production", r"outages?", r"incidents?", r"downtime", r"customer-facing", r"hotfix"),
}

# -- a problem to diagnose (the cause is not yet known) ---------------------------------------------
_PROBLEM_STRONG = words(
    r"memory leaks?", r"leak(?:s|ing)?", r"crash(?:es|ing)?", r"hang(?:s|ing)?", r"freez(?:e|es|ing)",
    r"intermittent(?:ly)?", r"flak(?:y|iness)", r"regressions?", r"bottlenecks?", r"drop(?:s|ped|ping)?",
    r"times? out", r"timeouts?", r"root cause", r"find the cause", r"figure out why", r"slow(?:ly|er|down)?",
    r"deadlocks?", r"(?:5\d\d|4\d\d) errors?", r"a 5\d\d", r"find and fix", r"track down", r"hunt down",
    r"grows?", r"spikes?", r"degrad\w+")
_PROBLEM_WEAK = words(r"bugs?", r"errors?", r"exceptions?", r"fail(?:s|ed|ing|ures?)?", r"broken", r"wrong",
                       r"doesn't work", r"not working", r"raises?", r"issues?")

# -- code and named things -------------------------------------------------------------------------------
_FENCE = _Needing(re.compile(r"```|~~~"), "```", "~~~")
_CODE_LINE = _Needing(re.compile(
    r"^\s*(?:def |class |import |from \S+ import|function |const |let |var |public |private |#include|"
    r"return |if \(|for \(|SELECT |INSERT |UPDATE \w+ SET|\$ |>>> )|[{};]\s*$|\w+\s*=\s*[\[{(\"'\w]",
    re.MULTILINE),
    "=", "{", "}", ";", "def ", "class ", "import ", "from ", "function ", "const ", "let ", "var ", "public ",
    "private ", "#include", "return ", "if (", "for (", "SELECT ", "INSERT ", "UPDATE ", "$ ", ">>> ")
_INLINE_CODE = _Needing(re.compile(r"`[^`\n]+`|\b\w+\([^)]*\)|\bdef \w+|\w+\[['\"\w]+\]"), "`", "(", "def ", "[")
# A token dense in operators is code or a pattern even without backticks: ^\d{3}-\d{4}$, a[i]->b.
_SYMBOLIC = _Needing(re.compile(r"\S*[\\^$|{}\[\]<>=*+](?:\S*[\\^$|{}\[\]<>=*+]){2}\S*"), *"\\^$|{}[]<>=*+")
_FILE = _Needing(re.compile(
    r"(?<![\w/])[\w./-]*\w\.(?:py|js|mjs|ts|tsx|jsx|go|rs|java|rb|php|c|h|cc|cpp|hpp|cs|kt|swift|sql|sh|ya?ml|"
    r"json|toml|md|html|css|ini|cfg|env|txt|lock|gradle|tf|proto)\b", _I), ".")
_PATH = _Needing(re.compile(r"(?<![\w.])/[\w{}:-]+(?:/[\w{}.:-]+)*"), "/")
# camelCase and PascalCase need a lower-case letter or digit then a capital; the others a dot or _.
_IDENT = _Needing(re.compile(r"\b(?:[A-Z][a-z0-9]+[A-Z]\w*|[a-z]+[A-Z]\w*|[A-Za-z]\w*\.[a-z_]\w*\(?|[a-z0-9]+_[a-z0-9_]+)\b"),
                  ".", "_", hint=re.compile(r"[a-z0-9][A-Z]"))

_CLAUSE_START = re.compile(r"(?:^|[.;:!?,\n(]|\b(?:and|then|to|please|also|can you|could you|would you|help me|"
                           r"need to|want to|let's|should|we|i)\b)\s*$")
_OBJECT_FOLLOWS = re.compile(r"\s+(?:the|this|that|these|those|our|my|your|a|an|it|them|all|every|each|some|"
                             r"its|their|out|up|why|how|what|whether)\b")
_QUESTION_START = words(r"what", r"what's", r"how", r"why", r"which", r"where", r"when", r"who", r"is", r"are",
                         r"does", r"do", r"can", r"could", r"should", r"would", r"will", r"did")
_MIGRATING_VERBS = ("mov", "convert", "switch", "transition")
_BIG_O = _Needing(re.compile(r"\bo\((?:1|n|log n|n log n|n\^?2|n²|2\^n|n!)\)"), "o(")
_CAUSE_GIVEN = _Needing(re.compile(r"\b(?:because|caused by|due to)\b"), "because", "caused by", "due to")
_TO = re.compile(r"\bto\b")
_SMALL_OBJECT = re.compile(r"\s+(?:this|that|the|a|my|our)?\s*(?:\w+\s+)?(?:function|method|snippet|loop|line|"
                           r"variable|regex|query|one-liner|class)\b")
_REQUEST_FORM = re.compile(r"(?:can|could|would|will) (?:you|u)\b")
_NEGATION = re.compile(r"\b(?:not|no|never|without|nothing|none|neither|nor|isn't|aren't|wasn't|weren't|"
                       r"don't|doesn't|didn't|won't|can't|cannot|hardly|rather than|instead of)\b|n't\b")
_CLAUSE_BREAK = re.compile(r"[.;:!?,]|\bbut\b|\bhowever\b")
_WORD = re.compile(r"[\w'-]+")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def is_negated(text: str, start: int, window: int = 4) -> bool:
    """Whether a negation within `window` words before `start`, in the same clause, governs it."""
    before = text[max(0, start - 60):start]
    parts = _CLAUSE_BREAK.split(before)
    clause = parts[-1] if parts else before
    last = _WORD.findall(clause)[-window:]
    return bool(last) and bool(_NEGATION.search(" ".join(last)))


def _hits(pattern: re.Pattern, text: str, negation: bool = False) -> list[str]:
    out = []
    for m in pattern.finditer(text):
        if negation and is_negated(text, m.start()):
            continue
        out.append(m.group(0).lower())
    return out


# -- the dimensions -------------------------------------------------------------------------------
# Each returns (value in [0, 1], evidence). Evidence is short: it is shown by `lynkr explain`.

def length(ask: str, low: str, conv: Conversation):
    n = len(_WORD.findall(ask)) if len(ask) < 20000 else len(ask) // 6
    return min(1.0, n / 80), f"{n} words"


def code(ask: str, low: str, conv: Conversation):
    if _FENCE.search(ask):
        return 1.0, "code block"
    lines = len(_CODE_LINE.findall(ask))
    if lines >= 2:
        return 1.0, f"{lines} code lines"
    if lines == 1 or _INLINE_CODE.search(ask) or _SYMBOLIC.search(ask):
        return 0.6, "inline code"
    return 0.0, ""


def named(ask: str, low: str, conv: Conversation):
    names = set(_FILE.findall(ask)) | set(_PATH.findall(ask)) | set(_IDENT.findall(ask))
    names.discard("")
    if not names:
        return 0.0, ""
    shown = sorted(names, key=len)[:4]
    return min(1.0, len(names) / 4), ", ".join(shown) + (" …" if len(names) > 4 else "")


def _used_as_verb(text: str, m: re.Match) -> bool:
    """A verb at the start of a clause or followed by its object: "Port the service" (not "what port")."""
    head = text[max(0, m.start() - 12):m.start()]
    if _CLAUSE_START.search(head):
        return True
    return bool(_OBJECT_FOLLOWS.match(text, m.end()))


def action(ask: str, low: str, conv: Conversation):
    for label, value, pattern in ACTION_CLASSES:
        for m in pattern.finditer(low):
            if _used_as_verb(low, m):
                # "Move the jobs from cron to Celery" is a migration whatever the verb.
                after = low[m.end():m.end() + 80]
                if (label == "edit" and m.group(0).startswith(_MIGRATING_VERBS) and not _SMALL.search(low)
                        and (_TRANSFORM.search(low) or _TO.search(after))):
                    return 0.75, f"build: {m.group(0)} … to …"
                # "Refactor this function" is an edit: a big verb on a function-sized object.
                if label == "build" and _SMALL_OBJECT.match(after):
                    return 0.45, f"edit: {m.group(0)} (small target)"
                return value, f"{label}: {m.group(0)}"
    return 0.0, ""


def scope(ask: str, low: str, conv: Conversation):
    wide = set(_hits(_WIDE, low))
    steps = _hits(_STEP, low)
    components = set(_hits(_COMPONENT, low))
    items = len(_LIST_ITEM.findall(ask))
    large = set(_hits(_LARGE, low))
    transform = bool(_TRANSFORM.search(low))
    # Enumerations: "the cart, coupon and payment modules" — commas and a closing and/or.
    commas = ask.count(",") + ask.count(";")
    sentences = max(0, len(_SENTENCE_END.findall(ask)) - 1)
    v = (0.22 * min(len(wide), 3) + 0.12 * min(len(steps), 3) + 0.08 * min(max(len(components) - 1, 0), 4)
         + 0.06 * min(commas + items, 6) + 0.05 * min(sentences, 3) + 0.15 * min(len(large), 2)
         + 0.2 * transform)
    ev = []
    if wide:
        ev.append("wide: " + ", ".join(sorted(wide)))
    if steps:
        ev.append("steps: " + ", ".join(steps[:3]))
    if len(components) > 1:
        ev.append(f"{len(components)} components")
    if large:
        ev.append("systems: " + ", ".join(sorted(large)))
    if transform:
        ev.append("from … to …")
    if commas + items:
        ev.append(f"{commas + items} list separators")
    return min(1.0, v), "; ".join(ev)


def small(ask: str, low: str, conv: Conversation):
    """1 when the ask is about something function-sized and names nothing bigger (lowers the score)."""
    hits = _hits(_SMALL, low)
    if not hits or _LARGE.search(low) or (_WIDE.search(low) and not _FILE.search(ask)):
        return 0.0, ""
    return 1.0, ", ".join(sorted(set(hits))[:3])


def reasoning(ask: str, low: str, conv: Conversation):
    strong = _hits(_REASON_STRONG, low, negation=True) + _BIG_O.findall(low)
    weak = _hits(_REASON_WEAK, low, negation=True)
    v = 0.4 * len(set(strong)) + 0.12 * len(set(weak))
    ev = sorted(set(strong)) + [f"({w})" for w in sorted(set(weak))]
    return min(1.0, v), ", ".join(ev[:6])


def risk(ask: str, low: str, conv: Conversation):
    domains = []
    extra = 0
    for name, pattern in RISK_DOMAINS.items():
        hits = set(_hits(pattern, low, negation=True))
        if hits:
            domains.append(f"{name} ({', '.join(sorted(hits)[:3])})")
            extra += len(hits) - 1
    return min(1.0, 0.3 * len(domains) + 0.08 * min(extra, 5)), "; ".join(domains)


def problem(ask: str, low: str, conv: Conversation):
    strong = set(_hits(_PROBLEM_STRONG, low, negation=True))
    weak = set(_hits(_PROBLEM_WEAK, low, negation=True))
    v = 0.45 * len(strong) + 0.15 * len(weak)
    if _CAUSE_GIVEN.search(low):
        v /= 2                       # "fails because of a hard-coded sleep": the diagnosis is done
        weak.add("cause given")
    return min(1.0, v), ", ".join(sorted(strong) + [f"({w})" for w in sorted(weak)][:4])


def question(ask: str, low: str, conv: Conversation):
    """1 for a plain question (lowers the score), 0 for an instruction."""
    s = ask.strip()
    if not s:
        return 0.0, ""
    # A short one-sentence question. "Is this correct? Reason through each case." and "can you add
    # logging…" are instructions.
    head = low.lstrip()
    if (_QUESTION_START.match(head) and not _REQUEST_FORM.match(head) and len(_SENTENCE_END.findall(s)) <= 1
            and len(_WORD.findall(s)) <= 15):
        return 1.0, "question"
    return 0.0, "instruction"


def agentic(ask: str, low: str, conv: Conversation):
    v = 0.6 * min(1.0, conv.tool_loop_depth / 10) + 0.4 * min(1.0, conv.tool_errors / 2)
    ev = []
    if conv.tool_loop_depth:
        ev.append(f"tool loop depth {conv.tool_loop_depth}")
    if conv.tool_errors:
        ev.append(f"{conv.tool_errors} failed tool results")
    if conv.tools:
        ev.append(f"{conv.tools} tools")
    return min(1.0, v), ", ".join(ev)


def conversation(ask: str, low: str, conv: Conversation):
    return min(1.0, max(0, conv.human_turns - 1) / 8), f"{conv.human_turns} user turns, {conv.messages} messages"


DIMENSIONS: dict[str, Callable[[str, str, Conversation], tuple[float, str]]] = {
    "length": length, "code": code, "named": named, "action": action, "scope": scope, "reasoning": reasoning,
    "risk": risk, "problem": problem, "question": question, "small": small, "agentic": agentic,
    "conversation": conversation,
}


# Dimensions that read the conversation; the others read the ask alone and are remembered by it.
_CONVERSATION_DIMENSIONS = frozenset({"agentic", "conversation"})
# Bounded in characters and in asks: every new turn is a new ask, and a large memo would only
# give the cyclic GC more to walk.
_MEMO_CHARS = 500_000
_MEMO_ASKS = 512
_by_ask: dict[str, dict[str, tuple[float, str]]] = {}
_memo_size = 0


def _text_dimensions(ask: str) -> dict[str, tuple[float, str]]:
    """Each text dimension's (value, evidence) for `ask`. Every turn of a tool loop scores the same
    ask (the user's last words) again, so it is read once; a new ask is read in full."""
    global _memo_size
    got = _by_ask.get(ask)
    if got is not None:
        return got
    # A pasted log or file can make the ask huge; its head and tail carry the request, and the
    # cap keeps the score's cost bounded. `length` still sees the whole ask.
    text = ask if len(ask) <= MAX_SCAN_CHARS else ask[:MAX_SCAN_CHARS - 2000] + "\n" + ask[-2000:]
    low = text.lower()
    got = {name: fn(ask if name == "length" else text, low, None)
           for name, fn in DIMENSIONS.items() if name not in _CONVERSATION_DIMENSIONS}
    if _memo_size + len(ask) > _MEMO_CHARS or len(_by_ask) >= _MEMO_ASKS:
        _by_ask.clear()
        _memo_size = 0
    _by_ask[ask] = got
    _memo_size += len(ask) + 100
    return got


def measure(ask: str, conv: Conversation, weights: dict[str, float]) -> tuple[float, dict[str, dict]]:
    """(score 0–100, {dimension: {points, why}}). A negative weight lowers the score."""
    total = 0.0
    parts: dict[str, dict] = {}
    text_values = _text_dimensions(ask)
    for name, fn in DIMENSIONS.items():
        w = weights.get(name, 0.0)
        if not w:
            continue
        value, why = text_values[name] if name in text_values else fn(ask, ask, conv)
        pts = round(w * value, 1)
        if pts:
            parts[name] = {"points": pts, "why": why} if why else {"points": pts}
        total += w * value
    return max(0.0, min(100.0, total)), parts
