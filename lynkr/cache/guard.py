"""The semantic cache's guard: after two prompts are found similar, decide whether they could
still want different answers.

Sentence embeddings are bad at exactly the differences that matter to a coding question:
"undo the commit and keep the changes" vs "… and discard the changes" is 0.98 cosine, "port
8080" vs "port 5432", "count to total" vs "total to count" 0.995. So after the similarity
check, the guard compares what changes an answer and rejects on any difference:

- numbers and units (word numbers count: "three" == 3), in order;
- identifiers (snake_case, camelCase, dotted, -flags, paths, file names) and quoted strings;
- languages, tools and frameworks named (with aliases: js == javascript);
- negations, and words from opposite sides of a pair (add/remove, keep/discard, enable/disable,
  ascending/descending, sync/async, …);
- direction: "X to Y" vs "Y to X";
- a near-identical sentence that swaps or adds a single word ("list and a tuple" vs "list and a
  set", "git stash" vs "git stash pop"), unless the words are known synonyms or filler.

It is deliberately one-sided: a wrong rejection costs one upstream call, a wrong hit serves a
wrong answer. `check(a, b)` returns None when the pair may share an answer, else the reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

from rapidfuzz.distance import Levenshtein

__all__ = ["check", "features", "Features"]

# -- vocabulary -------------------------------------------------------------------------------

_WORD_NUMBERS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000,
    "single": 1, "once": 1, "twice": 2, "double": 2, "triple": 3, "half": 0.5, "dozen": 12,
    "first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th", "last": "last",
    "previous": "last", "latest": "last",
}
# "one" is too often a pronoun ("which one", "into one") to count as a number.
_WEAK_NUMBERS = {"one", "single", "once", "second", "last", "previous", "latest"}

# Languages, tools, frameworks, data stores, platforms. Aliases map to one canonical name.
_TECH_ALIASES = {
    "js": "javascript", "node": "nodejs", "node.js": "nodejs", "ts": "typescript", "py": "python",
    "python3": "python", "pythonic": "python", "golang": "go", "postgres": "postgresql", "psql": "postgresql", "pg": "postgresql",
    "mongo": "mongodb", "k8s": "kubernetes", "kubectl": "kubernetes", "c#": "csharp", "c++": "cpp",
    "react.js": "react", "reactjs": "react", "vue.js": "vue", "vuejs": "vue", "next.js": "nextjs",
    "nuxt.js": "nuxt", "express.js": "express", "expressjs": "express", "sh": "bash", "zsh": "zsh",
    "tf": "terraform", "es": "elasticsearch", "mssql": "sqlserver", "win": "windows", "osx": "macos",
    "mac": "macos", "venv": "python", "pip": "pip", "npm": "npm", "yarn": "yarn", "pnpm": "pnpm",
}
_TECH = set(_TECH_ALIASES.values()) | {
    "python", "javascript", "typescript", "java", "kotlin", "scala", "rust", "go", "ruby", "php", "perl",
    "swift", "objective-c", "c", "cpp", "csharp", "fsharp", "haskell", "elixir", "erlang", "clojure", "lua",
    "r", "julia", "dart", "matlab", "fortran", "cobol", "zig", "nim", "ocaml", "bash", "powershell", "fish",
    "sql", "mysql", "postgresql", "sqlite", "mongodb", "redis", "cassandra", "dynamodb", "oracle",
    "mariadb", "elasticsearch", "kafka", "rabbitmq", "duckdb", "snowflake", "bigquery",
    "react", "vue", "angular", "svelte", "nextjs", "django", "flask", "fastapi", "rails", "laravel",
    "spring", "express", "nestjs", "jquery", "tailwind", "bootstrap", "pandas", "numpy", "pytorch",
    "tensorflow", "jax", "spark", "hadoop", "airflow",
    "git", "github", "gitlab", "docker", "podman", "kubernetes", "helm", "terraform", "ansible", "aws",
    "gcp", "azure", "linux", "windows", "macos", "ubuntu", "debian", "centos", "alpine", "nginx", "apache",
    "vim", "neovim", "emacs", "vscode", "webpack", "vite", "babel", "eslint", "prettier", "jest", "pytest",
    "mocha", "cypress", "selenium", "playwright", "maven", "gradle", "cargo", "make", "cmake", "gcc",
    "clang", "llvm", "jvm", "wasm", "graphql", "grpc", "rest", "http", "https", "tcp", "udp", "ssh", "ssl",
    "tls", "dns", "json", "yaml", "toml", "xml", "csv", "html", "css", "sass", "markdown", "regex",
    "ios", "android", "excel", "chrome", "firefox", "safari", "iphone", "windows10", "mysql8",
}
# Words that are tools but also plain English; they count only next to a code-ish context.
_AMBIGUOUS_TECH = {"go", "make", "rest", "r", "c", "swift", "spring", "express", "rails", "apache",
                   "oracle", "spark", "fish", "jest", "make", "mac", "win", "node", "es", "tf", "pg", "sh"}

# Opposition groups: each group lists classes of synonyms; two prompts must name the same
# classes of every group they touch. Stems (see _stem) are matched.
_OPPOSITES: list[list[set[str]]] = [
    [{"add", "append", "insert", "create", "new", "make", "creat", "plus"},
     {"remove", "delet", "drop", "rm", "eras", "destroy", "purg", "strip", "minus", "unset", "uninstal", "prune"},
     {"renam", "mv"}, {"list", "show", "ls", "view", "display", "print", "see"},
     {"updat", "modif", "edit", "chang", "alter"}, {"copi", "cp", "clone", "duplicat"},
     {"merg", "combin", "squash", "join"}, {"split", "separat"}, {"pop"}, {"appli", "apply"},
     {"push"}, {"pull"}, {"fetch"}, {"rebas"}, {"reset"}, {"revert", "undo"}, {"stash"},
     {"install"}, {"upgrad"}, {"downgrad"}, {"commit"}, {"checkout", "switch"}],
    [{"keep", "preserv", "retain", "save", "sav"}, {"discard", "lose", "throw", "wipe", "los"}],
    [{"enabl", "turn on", "activ", "allow"}, {"disabl", "turn off", "deactiv", "block", "forbid", "deni"}],
    [{"set"}, {"unset", "clear"}],
    [{"ascend", "asc", "increas"}, {"descend", "desc", "decreas", "revers"}],
    [{"larger", "bigger", "greater", "more", "max", "maximum", "highest", "longest", "most", "above",
      "over", "expand", "grow", "upper", "uppercas", "top"},
     {"smaller", "less", "fewer", "min", "minimum", "lowest", "shortest", "least", "below", "under",
      "shrink", "lower", "lowercas", "bottom"}],
    [{"async", "asynchronous", "asynchron", "concurr", "parallel", "nonblock"},
     {"sync", "synchronous", "synchron", "sequenti", "serial", "block"}],
    [{"start", "begin", "launch", "run", "open"}, {"stop", "end", "kill", "terminat", "halt", "close", "exit", "quit"},
     {"restart", "reload"}, {"paus", "suspend"}, {"resum"}],
    [{"encrypt", "encod", "compress", "serializ", "zip"}, {"decrypt", "decod", "decompress", "deserializ", "unzip"}],
    [{"import"}, {"export"}], [{"upload"}, {"download"}], [{"input", "stdin"}, {"output", "stdout"}, {"stderr"}],
    [{"read", "load", "pars", "get"}, {"write", "dump", "sav", "post", "put"}],
    [{"lock"}, {"unlock"}], [{"login", "signin", "log in", "sign in"}, {"logout", "signout", "log out", "sign out"}],
    [{"public"}, {"privat"}, {"protect"}], [{"static"}, {"dynam"}], [{"local"}, {"remot"}, {"global"}],
    [{"true"}, {"fals"}], [{"before"}, {"after"}], [{"first", "head", "begin"}, {"last", "tail", "end"}],
    [{"time"}, {"space", "memori"}], [{"horizont"}, {"vertic"}], [{"left"}, {"right"}], [{"up"}, {"down"}],
    [{"valid"}, {"invalid"}], [{"mutabl"}, {"immutabl"}], [{"shallow"}, {"deep"}],
    [{"inner"}, {"outer"}, {"left"}, {"right"}, {"full"}, {"cross"}],
    [{"let"}, {"var"}, {"const"}], [{"list", "array"}, {"tupl"}, {"set"}, {"dict", "dictionari", "map", "hash"}],
    [{"thread"}, {"process"}], [{"stack"}, {"heap"}, {"queue"}], [{"client"}, {"server"}],
    [{"frontend", "front"}, {"backend", "back"}], [{"dev", "develop", "development"}, {"prod", "production"}],
    [{"red"}, {"green"}, {"blue"}, {"yellow"}, {"black"}, {"white"}, {"orang"}, {"purpl"}, {"grey", "gray"},
     {"pink"}, {"brown"}],
    [{"secur", "vulner", "inject", "safe"}, {"slow", "fast", "perform", "speed", "optim"}],
    [{"best", "top", "greatest"}, {"worst"}, {"good", "great", "nice"}, {"bad", "poor"}, {"easiest", "simplest"},
     {"fastest", "quickest"}, {"cheapest"}, {"favorit", "favourit"}], [{"pro", "advantag", "benefit"}, {"con", "disadvantag", "drawback"}],
    [{"cheap", "cheapest"}, {"expens"}], [{"easi", "easiest", "simpl"}, {"hard", "hardest", "difficult"}],
    [{"young", "younger"}, {"old", "older"}], [{"past"}, {"futur"}], [{"rich"}, {"poor"}],
    [{"man", "men", "boy", "male"}, {"woman", "women", "girl", "femal"}], [{"buy"}, {"sell"}],
    [{"win"}, {"lose", "los"}], [{"love"}, {"hate"}], [{"happi"}, {"sad"}], [{"posit"}, {"negat"}],
    [{"legal"}, {"illeg"}], [{"accept"}, {"reject"}], [{"includ"}, {"exclud"}], [{"success"}, {"fail", "failur"}],
]
_NEGATIONS = {"not", "no", "never", "without", "cannot", "cant", "dont", "doesnt", "isnt", "arent", "wont",
              "shouldnt", "wouldnt", "couldnt", "didnt", "neither", "nor", "none", "nothing", "non", "avoid",
              "except", "exclude", "excluding", "ignore", "ignoring", "prevent"}
# Words that say nothing about what is asked: their presence or absence changes no answer.
_FILLER = {
    "a", "an", "the", "i", "me", "my", "mine", "we", "our", "you", "your", "it", "its", "this", "that", "these",
    "those", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing", "done",
    "can", "could", "should", "would", "will", "shall", "may", "might", "must", "have", "has", "had",
    "how", "what", "whats", "why", "when", "where", "which", "who", "whom", "whose", "to", "of", "in", "on",
    "at", "for", "with", "by", "about", "as", "into", "from", "and", "or", "but", "so", "if", "then", "than",
    "there", "here", "some", "any", "all", "every", "each", "please", "exactly", "actually", "really",
    "just", "also", "way", "ways", "best", "good", "correct", "proper", "properly", "right",
    "explain", "tell", "describe", "meaning", "mean", "means", "purpose", "reason", "use", "used", "using", "command", "syntax", "code", "example", "help", "need", "want", "like",
    "go", "going", "thing", "things", "something", "anything", "someone", "somebody", "one",
    "difference", "differ", "differs", "different", "between", "vs", "versus", "compare", "compared", "same",
    "function", "method", "called", "call", "does", "mean", "meant", "kind", "type", "sort", "quick",
    "quickly", "easy", "easiest", "simple", "simplest", "fastest", "recommended", "idiomatic",
    "other", "another", "again", "still", "even", "very", "much", "many", "more", "most", "such",
    "own", "same", "too", "ever", "including", "given", "certain", "particular", "specific", "specifically", "while", "whilst", "via", "through", "up", "out", "off", "over", "let",
    "lets", "let's", "able", "possible", "anyone", "someone", "guys", "hi", "hello", "thanks", "thank",
}
# Word pairs that mean the same in a question (after stemming); swapping one for the other is fine.
_SYNONYMS = [
    {"undo", "revert", "roll back", "rollback"}, {"make", "creat", "build", "generat"},
    {"delet", "remov", "eras", "rm"}, {"exit", "quit", "leav", "close"}, {"show", "list", "display", "print", "see", "view"},
    {"find", "check", "see", "determin", "identifi", "get", "obtain", "know", "tell", "detect"},
    {"combin", "squash", "merg"}, {"recent", "latest", "last", "previous"}, {"rename", "renam"},
    {"big-o", "complex", "time complex"}, {"program", "code", "script"}, {"error", "except"},
    {"folder", "directori", "dir"}, {"file", "files"}, {"fix", "solv", "resolv", "repair"},
    {"bug", "issu", "problem", "error"}, {"flag", "option", "switch", "argument", "arg", "param"},
    {"set", "defin", "assign"}, {"function", "func", "method"}, {"variabl", "var"},
    {"iter", "loop", "travers", "go through"}, {"start", "begin"}, {"stop", "halt"},
{"learn", "studi"}, {"improv", "better", "enhanc", "boost"},
    {"earn", "make"}, {"money", "cash", "incom"}, {"book", "novel"}, {"job", "career"},
    {"movi", "film"}, {"countri", "nation"}, {"quora"}, {"possibl", "feasibl"},
]

# -- tokenising -------------------------------------------------------------------------------

_QUOTED = re.compile(r"`([^`]+)`|\"([^\"]{1,200})\"|(?<![A-Za-z])'([^']{1,200})'(?![A-Za-z])|“([^”]{1,200})”")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\w.\-~]*/)+[\w.\-]+|[\w\-]+\.(?:py|js|ts|tsx|jsx|go|rs|rb|java|kt|c|h|cpp|hpp|cs|"
                   r"php|sh|md|json|ya?ml|toml|ini|cfg|txt|csv|html|css|sql|lock|xml|env|conf|log|swift|scala|lua|"
                   r"dockerfile|gradle|vue|svelte)\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:\s?(?:%|ms|s|sec|secs|seconds?|minutes?|mins?|hours?|h|days?|"
                     r"kb|mb|gb|tb|k|m|px|em|rem|x|gib|mib|bytes?|bits?|fps|hz|khz|mhz|ghz))?(?![\w])", re.I)
_TOKEN = re.compile(r"[A-Za-z_][\w]*(?:[.:\-]{1,2}[A-Za-z_][\w]*)*(?:\(\))?|--?[A-Za-z][\w\-]*|\d+(?:\.\d+)*|[#+]+", re.U)
_OPERATOR = re.compile(r"(?!\.\.)[=!<>&|+\-*/%^~:?.]{2,}(?![\w])|(?<=\s)[=<>!&|^~%*/+\-](?=\s)")
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z]{2,}[a-z]")


def _stem(w: str) -> str:
    """A small suffix stripper: enough to make keep/keeping and change/changes meet."""
    w = w.lower()
    for suf in ("ingly", "ations", "ation", "ments", "ment", "ings", "ing", "edly", "ies", "ied", "ed", "es", "ly", "e", "s", "y"):
        if len(w) - len(suf) >= 3 and w.endswith(suf):
            w = w[: -len(suf)]
            break
    return w


_STEMMED_OPPOSITES = [[{_stem(w) if " " not in w else w for w in cls} | cls for cls in group] for group in _OPPOSITES]
_STEM_SYNONYM = {}
for _i, _group in enumerate(_SYNONYMS):
    for _w in _group:
        _STEM_SYNONYM.setdefault(_stem(_w), f"syn{_i}")
        _STEM_SYNONYM.setdefault(_w, f"syn{_i}")
_FILLER_STEMS = {_stem(w) for w in _FILLER} | _FILLER


def _is_identifier(tok: str) -> bool:
    if tok.startswith("-") and len(tok) > 1:
        return True                                   # CLI flags: -f, --force
    core = tok.rstrip("()")
    if tok.endswith("()"):
        return True
    if "_" in core.strip("_") or "::" in core or ("." in core and not core.endswith(".")):
        return True                                   # snake_case, Foo::bar, JSON.stringify
    if _CAMEL.search(core) and not core.isupper():
        return True                                   # camelCase, PascalCase with an inner capital
    if any(ch.isdigit() for ch in core) and any(ch.isalpha() for ch in core):
        return True                                   # utf8, v2, es6, md5
    return False


@dataclass(frozen=True, slots=True)
class Features:
    numbers: tuple
    identifiers: tuple
    quoted: frozenset
    paths: frozenset
    tech: frozenset
    negations: int
    opposites: tuple                                  # per group: frozenset of classes named
    entities: tuple                                   # capitalised words inside a sentence (names, places)
    questions: frozenset                              # kinds of question asked: why, where, yesno, …
    sentences: int
    person: frozenset                                 # who asks about whom: "1" (I, my), "2" (you, your)
    tokens: tuple                                     # stemmed words, in order (for the edit check)
    content: tuple                                    # stemmed words minus filler, in order


# Most questions name no side of most opposite groups: one shared empty set rather than a new one
# per group (55 groups x 216 bytes made each remembered question ~14 KB; 4,096 of them ~55 MB).
_NAMES_NONE = frozenset()


@lru_cache(maxsize=4096)
def features(text: str) -> Features:
    text = (text or "").replace("’", "'")
    text = re.sub(r"(?i)\b(can)'?t\b", r"\1 not", text)
    text = re.sub(r"(?i)\bwon'?t\b", "will not", text)
    text = re.sub(r"(?i)n't\b", " not", text)
    text = re.sub(r"(?i)\b(what|that|it|there|here|who|where|how|when|why|which|she|he)'s\b", r"\1 is", text)
    text = re.sub(r"(?i)'re\b", " are", text)
    text = re.sub(r"(?i)'ve\b", " have", text)
    text = re.sub(r"(?i)'ll\b", " will", text)
    text = re.sub(r"(?i)\bi'm\b", "I am", text)
    text = re.sub(r"(?i)\blet's\b", "let us", text)
    text = re.sub(r"(?<=\w)'s\b", "", text)        # possessive: "Gandhi's" names Gandhi
    quoted = frozenset(next(g for g in m.groups() if g is not None).strip().lower() for m in _QUOTED.finditer(text))
    paths = frozenset(m.group(0).lower() for m in _PATH.finditer(text))
    numbers = []
    for m in _NUMBER.finditer(text):
        num = re.sub(r"\s+", "", m.group(0).lower()).replace(",", "")
        numbers.append(_normalise_unit(num))
    # Numbers (with their units) are compared on their own; the words are what is left.
    raw_tokens = [t for t in _TOKEN.findall(_NUMBER.sub(" ", text))]
    operators = _OPERATOR.findall(text)
    words: list[str] = []
    identifiers: list[str] = []
    tech: set[str] = set()
    negations = 0
    lowered = [t.lower() for t in raw_tokens]
    for i, (tok, low) in enumerate(zip(raw_tokens, lowered)):
        if low.isdigit() or re.fullmatch(r"\d+(\.\d+)*", low):
            continue                                  # numbers are compared on their own
        if low in _WORD_NUMBERS and not (low in _WEAK_NUMBERS):
            numbers.append(str(_WORD_NUMBERS[low]))
            continue
        canon = _TECH_ALIASES.get(low, low)
        # "make", "go", "express" name tools only when written as names ("Go", "Express") or
        # introduced as one ("in go", "with make"); otherwise they are verbs and adjectives.
        if canon in _TECH and (canon not in _AMBIGUOUS_TECH and low not in _AMBIGUOUS_TECH
                               or (tok[:1].isupper() and i > 0)
                               or (i > 0 and lowered[i - 1] in ("in", "with", "using", "via", "for", "of"))):
            tech.add(canon)
        if _is_identifier(tok) and canon not in _TECH:
            identifiers.append(tok.lower().rstrip("()"))
        low = low.replace("'", "")
        if low in _NEGATIONS or low.endswith("n't") or low.endswith("nt") and low in _NEGATIONS:
            negations += 1
        words.append(low)
    text_low = " " + " ".join(words) + " "
    stems = [w if w in _FILLER else _stem(w) for w in words]
    stem_set = set(stems) | set(words)
    opposites = []
    for group in _STEMMED_OPPOSITES:
        named = frozenset(j for j, cls in enumerate(group)
                          if any((w in stem_set) if " " not in w else (f" {w} " in text_low) for w in cls))
        opposites.append(named or _NAMES_NONE)
    content = tuple(_TECH_ALIASES.get(w, s) for s, w in zip(stems, words) if w not in _FILLER and s not in _FILLER_STEMS)
    entities = []
    for i, tok in enumerate(raw_tokens):
        # A capitalised word that does not open a sentence, and is not a tech name or an
        # identifier (those have their own checks): a name, a place, a product.
        if (i > 0 and tok[:1].isupper() and lowered[i] not in _FILLER and not _is_identifier(tok)
                and _TECH_ALIASES.get(lowered[i], lowered[i]) not in _TECH and lowered[i] not in _WORD_NUMBERS
                and not re.search(r"[.?!:]\s*" + re.escape(tok) + r"\b", text)):
            entities.append(lowered[i])
    questions = set()
    for w in words:
        if w in _QUESTION_WORDS:
            questions.add(_QUESTION_WORDS[w])
    if " how many " in text_low or " how much " in text_low:
        questions.add("quantity")
    if _COMPARE.search(text_low):
        questions.add("compare")
    if _MECHANISM.search(text_low):
        questions.add("mechanism")
    if ("compare" not in questions and not questions & {"why", "quantity"} and _DESCRIBE.match(text.strip().lower())
            and not _PROCEDURE_ASKED.search(text_low)):
        questions.add("describe")       # "what is X", "explain X": not "how do I use X", "best X"
    if _COMPOUND.search(text_low):
        questions.add("compound")       # "what is X and how …": two questions in one
    for sent in re.split(r"(?<=[.?!])\s+", text.strip()):
        first = sent.split(None, 1)[0].lower() if sent.strip() else ""
        if first in _YESNO_OPENERS:
            questions.add("yesno")
    sentences = max(1, len([q for q in re.split(r"[?]+", text) if q.strip()]) if "?" in text else 1)
    # "How do I/you …" asks for a procedure, anyone's: marked apart from a question about me
    # ("should I", "my symptoms") or about you ("your dream"), which must then agree.
    person = set()
    rest = text_low
    for m in _PROCEDURAL.finditer(text_low):
        person.add("p1" if m.group(2) in ("i", "we") else "p2")
    rest = _PROCEDURAL.sub(" how to ", rest)
    rest = _REQUEST.sub(" ", rest)
    if any(f" {w} " in rest for w in _FIRST_PERSON):
        person.add("1")
    if _SECOND_PERSON.search(rest):
        person.add("2")
    identifiers += operators                          # == vs ===, -> vs =>: different questions
    return Features(numbers=tuple(numbers), entities=tuple(entities), questions=frozenset(questions),
                    sentences=sentences, person=frozenset(person), identifiers=tuple(identifiers), quoted=quoted, paths=paths,
                    tech=frozenset(tech), negations=negations, opposites=tuple(opposites), tokens=tuple(stems),
                    content=content)


_UNIT_ALIASES = {"s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s", "ms": "ms", "m": "m",
                 "min": "min", "mins": "min", "minute": "min", "minutes": "min", "h": "h", "hour": "h", "hours": "h",
                 "day": "d", "days": "d", "byte": "b", "bytes": "b", "bit": "bit", "bits": "bit"}


def _normalise_unit(num: str) -> str:
    m = re.fullmatch(r"([-+]?\d+(?:\.\d+)*)([a-z%]*)", num)
    if not m:
        return num
    value, unit = m.groups()
    value = value.lstrip("+")
    return value + _UNIT_ALIASES.get(unit, unit)


# -- the check --------------------------------------------------------------------------------

_QUESTION_WORDS = {"why": "why", "purpose": "why", "reason": "why", "reasons": "why", "where": "where",
                   "when": "when", "who": "who", "whom": "who", "whose": "who"}
_COMPARE = re.compile(r" (differen\w*|differ|differs|vs|versus|compare\w*|same (as|thing)|similar\w*|better|worse) ")
_MECHANISM = re.compile(r" how (does|do|is|are|did|was|were) (?!i |you |we |one )(\w+ ){1,4}(work|works|done|made|happen|function) ")
_ARTICLES = {"a", "an", "the", "some", "any"}
_WH = {"what", "which", "how", "whats"}
_FUNCTION = _ARTICLES | {"about", "in", "on", "at", "for", "of", "from", "to", "with", "into", "by", "over", "under",
                         "my", "your", "his", "her", "their", "our", "its", "this", "that", "these", "those"}
_FIRST_PERSON = {"i", "me", "my", "mine", "myself", "we", "us", "our", "ours"}
_SECOND_PERSON = re.compile(r" (you|your|yours|yourself) ")
_PROCEDURAL = re.compile(r" how (do|can|could|would|should|shall|will|to) (i|we|you|one) ")
_REQUEST = re.compile(r" (can|could|would|will) you (please )?(explain|tell|show|help|give|describe|list|write|suggest) ")
_DESCRIBE = re.compile(r"^(?:(?:can|could|would) you (?:please )?)?(?:"
                       r"(?:what|who) (?:is|are|was|were) (?!(?:some|the best|the most|the main|the top|the applications|"
                       r"the uses|the benefits|the advantages|the disadvantages|the steps|the ways?|the types|good|"
                       r"your|my)\b)[^?]*"
                       r"|what does [^?]+ (?:do|mean|stand for)(?: [^?]*)?"
                       r"|what is meant by [^?]+|explain [^?]+|define [^?]+|describe [^?]+|tell me about [^?]+"
                       r")[?.!]*$")
_PROCEDURE_ASKED = re.compile(r" (command|commands|way|ways|syntax|keys?|steps?|code|method|function|option|flag|"
                              r"shortcut|tool|api) (to|for) ")
_COMPOUND = re.compile(r" and (how|why|where|when|what|which|who) ")
_YESNO_OPENERS = {"is", "are", "was", "were", "do", "does", "did", "should", "will", "have", "has", "am",
                  "isn't", "aren't", "doesn't", "don't", "shall"}
SLACK_SIMILARITY = 0.92  # …and only when the two prompts are at least this similar
MAX_UNMATCHED = 1        # content words one side says and the other does not, before we call it a different question
NEAR_IDENTICAL = 0.7     # token-sequence similarity above which two prompts count as one sentence edited
_DIRECTION = {"to", "into", "from", "than", "instead", "over", "onto", "as"}


def check(a: str, b: str, similarity: float | None = None) -> str | None:
    """None if `a` and `b` may share an answer; otherwise a short reason (for telemetry).
    Symmetric: check(a, b) == check(b, a). `similarity` (cosine of the two embeddings), when
    given, decides whether one unexplained content word is tolerated."""
    if a == b:
        return None
    return _check(features(a), features(b), similarity)


def _check(fa: Features, fb: Features, similarity: float | None = None) -> str | None:
    # Numbers are compared in order, so "Python 2 to 3" and "Python 3 to 2" differ; a number
    # only one side states is a difference too ("the last commits" vs "the last 3 commits").
    if fa.numbers != fb.numbers:
        return "numbers"
    if fa.identifiers != fb.identifiers and sorted(set(fa.identifiers)) != sorted(set(fb.identifiers)):
        return "identifiers"
    if fa.identifiers != fb.identifiers and _order_flipped(fa.identifiers, fb.identifiers):
        return "identifiers"
    if fa.paths != fb.paths:
        return "paths"
    if fa.quoted != fb.quoted:
        return "quoted"
    if fa.tech != fb.tech:
        return "tech"
    # Names must appear on both sides (in any case: "Self Esteem" vs "self-esteem"), in order.
    words_a, words_b = set(fa.tokens) | set(fa.entities), set(fb.tokens) | set(fb.entities)
    if any(_stem(e) not in words_b and e not in words_b for e in fa.entities) or \
            any(_stem(e) not in words_a and e not in words_a for e in fb.entities):
        return "names"
    if _order_flipped(fa.entities, fb.entities):
        return "names"
    if fa.questions != fb.questions:
        return "question"
    if fa.sentences != fb.sentences:
        return "questions"
    pa, pb = fa.person, fb.person
    if ({"p1", "p2"} <= pa | pb and not ({"p1", "p2"} <= pa or {"p1", "p2"} <= pb)) or \
            (pa & {"1", "2"}) != (pb & {"1", "2"}):
        return "person"
    if min(fa.negations, 2) != min(fb.negations, 2):       # "not X" vs "X"; "not X" vs "not X and not Y"
        return "negation"
    for ga, gb in zip(fa.opposites, fb.opposites):
        # Both name something from the same group, and not the same things: keep vs discard.
        # One side naming nothing ("set a variable" vs "define a variable") is left to the rest.
        if ga != gb and ga and gb:
            return "opposites"
    # The same words in another order around "to"/"from"/"than": "count to total" vs "total to count".
    if set(fa.content) == set(fb.content) and fa.content != fb.content and "compare" not in fa.questions and (
            _direction_flipped(fa.tokens, fb.tokens) or _direction_flipped(fb.tokens, fa.tokens)):
        return "direction"
    # One word one side says and the other does not is tolerated only in longer prompts ("how do
    # spiders mate": every word is the question) whose embeddings agree strongly.
    slack = MAX_UNMATCHED if (min(len(set(fa.content)), len(set(fb.content))) >= 3
                              and (similarity is None or similarity >= SLACK_SIMILARITY)) else 0
    if _preposition_swapped(fa.tokens, fb.tokens):
        return "preposition"
    if _unmatched(fa.content, fb.content) > slack:
        return "coverage"
    reason = _small_edit(fa, fb)
    if reason:
        return reason
    return None


def _order_flipped(xs: tuple, ys: tuple) -> bool:
    common = [x for x in xs if x in ys]
    return common != [y for y in ys if y in xs]


def _direction_flipped(ta: tuple, tb: tuple) -> bool:
    """'X to Y' in one and 'Y to X' in the other (the same linking word, the ends swapped)."""
    def triples(tokens):
        out = set()
        for i, t in enumerate(tokens):
            if t not in _DIRECTION:
                continue
            x = next((w for w in reversed(tokens[:i]) if w not in _FILLER_STEMS), None)
            y = next((w for w in tokens[i + 1:] if w not in _FILLER_STEMS), None)
            if x and y and x != y:
                out.add((x, t, y))
        return out
    tb_triples = triples(tb)
    return any((y, d, x) in tb_triples for x, d, y in triples(ta))


def _unmatched(ca: tuple, cb: tuple) -> int:
    """Content words of either side that the other side does not say, even as a synonym or a
    near spelling: what one prompt asks about that the other does not."""
    xa, xb = {_canon(w) for w in ca}, {_canon(w) for w in cb}
    missing = 0
    for mine, other in ((xa, xb), (xb, xa)):
        for w in mine - other:
            # A typo ("enegy") is the same word; a different ending is not.
            if not any(len(w) >= 5 and abs(len(w) - len(o)) <= 1 and w[-2:] == o[-2:]
                       and Levenshtein.distance(w, o) <= 1 for o in other):
                missing += 1
    return missing


_PREPOSITIONS = {"about", "in", "on", "at", "for", "of", "from", "to", "with", "into", "by", "over", "under",
                 "within", "inside", "using", "via", "without", "against", "between", "toward", "towards"}
_SAME_PREPOSITION = [{"in", "with", "using", "via", "within", "inside"}, {"toward", "towards", "to"}]


def _preposition_triples(tokens: tuple) -> dict:
    out = {}
    skip = _ARTICLES | _FUNCTION - _PREPOSITIONS
    for i, t in enumerate(tokens):
        if t not in _PREPOSITIONS:
            continue
        x = next((w for w in reversed(tokens[:i]) if w not in skip), None)
        y = next((w for w in tokens[i + 1:] if w not in skip), None)
        if x and y and x not in _PREPOSITIONS and y not in _PREPOSITIONS:
            out.setdefault((x, y), set()).add(t)
    return out


def _preposition_swapped(ta: tuple, tb: tuple) -> bool:
    """'poems about India' vs 'poems in India': the same two words joined by another preposition."""
    pa, pb = _preposition_triples(ta), _preposition_triples(tb)
    for pair, preps in pa.items():
        other = pb.get(pair)
        if other is None or preps & other:
            continue
        if not any((preps | other) <= same for same in _SAME_PREPOSITION):
            return True
    return False


def _canon(w: str) -> str:
    return _STEM_SYNONYM.get(w, w)


def _small_edit(fa: Features, fb: Features) -> str | None:
    """Two nearly identical sentences where one word was swapped or added: that word is the
    point of the question. Synonym swaps pass; rephrasings (different sentence shape) are left
    to the other checks."""
    ta, tb = [_canon(w) for w in fa.tokens], [_canon(w) for w in fb.tokens]
    if SequenceMatcher(a=ta, b=tb, autojunk=False).ratio() < NEAR_IDENTICAL and \
            SequenceMatcher(a=" ".join(fa.tokens), b=" ".join(fb.tokens), autojunk=False).ratio() < 0.85:
        return None
    # In one sentence, a swapped preposition or possessive is the point: "poems about India" vs
    # "poems in India", "make my account" vs "make an account".
    for op, i1, i2, j1, j2 in SequenceMatcher(a=ta, b=tb, autojunk=False).get_opcodes():
        if op == "replace":
            sa, sb = set(ta[i1:i2]), set(tb[j1:j2])
            if sa <= _FUNCTION and sb <= _FUNCTION and not (sa | sb) <= _ARTICLES and not (sa | sb) <= _WH:
                return "edit"
    xa, xb = [_canon(w) for w in fa.content], [_canon(w) for w in fb.content]
    if xa == xb:
        return None
    sm = SequenceMatcher(a=xa, b=xb, autojunk=False)
    changed_a, changed_b = [], []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op != "equal":
            changed_a += xa[i1:i2]
            changed_b += xb[j1:j2]
    if set(changed_a) == set(changed_b):
        return None                                   # reordering only
    same = sum(i2 - i1 for op, i1, i2, _j1, _j2 in sm.get_opcodes() if op == "equal")
    if same == 0:
        return None                                   # nothing in common: a rephrasing, not an edit
    # A word that appears on one side only, in an otherwise shared sentence.
    only_a = set(changed_a) - set(changed_b)
    only_b = set(changed_b) - set(changed_a)
    if not (only_a or only_b):
        return None
    shared_ratio = same / max(len(xa), len(xb))
    if len(only_a) + len(only_b) <= 2 and shared_ratio >= 0.5:
        return "edit"
    return None
