"""The semantic cache's guard: after two prompts are found similar, decide whether they could
still want different answers.

Sentence embeddings are bad at exactly the differences that matter to a coding question: "merge
main into my branch" vs "merge my branch into main" is 0.99 cosine, "all columns are null" vs
"any column is null" 0.98. So the guard does not weigh words; it accounts for them. Each prompt is
read into typed tokens, and a hit needs every token of one prompt matched by the other:

1. **Read** (`read`, once per text): contractions expanded, courtesy removed ("hi", "could you
   please", "thanks in advance"), abbreviations expanded (k8s → kubernetes, db → database, w/ →
   with), words stemmed and mapped to a synonym class (delete = remove = rm). Every token gets a
   KIND: number, code (identifiers, flags, operators, quoted code), path, tech (languages, tools,
   frameworks), platform (operating systems, architectures), quantifier (all / any / one / some /
   none), position (first / last), direction (to, into, from, than, before, …), negation, name
   (a capitalised word inside a sentence), question (why / where / when / who / how many), word
   (any other content word), or filler (articles, pronouns, auxiliaries, "how", "what", …).
2. **Align** (per pair): a word one side misspells is the other side's word when they share the
   first letter and are one edit apart (two for long words); codes, numbers and paths never are.
3. **Compare**, rule by rule; the first difference refuses, naming its rule and tokens:
   - every kind except filler: the two prompts name the same set (numbers: the same sequence,
     so "Python 2 to 3" is not "Python 3 to 2"; negations: the same count);
   - direction: the words each direction word points at agree — "X to Y" vs "Y to X", "from A
     to B" vs "from B to A", "merge A into B" vs "merge B into A" (`_swapped`).

It is deliberately one-sided: a wrong refusal costs one upstream call, a wrong hit serves the
answer to another question. Nothing here is tuned to a phrase: a rule is a kind of token and the
lists below are the vocabulary of those kinds. `check(a, b)` returns None when the pair may share
an answer, else the refusal as text ("quantifier: all ≠ any"), which `lynkr explain` and the
telemetry show; `refusal(a, b)` returns it as a `Refusal`.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from py_rust_stemmers import SnowballStemmer
from rapidfuzz.distance import DamerauLevenshtein

from lynkr.kit.cache import remembered

__all__ = ["check", "refusal", "read", "signature", "summary", "technical", "Refusal", "Reading", "KINDS"]

READ_LIMIT = 4000       # characters of a prompt the guard reads; a longer prompt matches only itself
# The order refusals are reported in: the most specific kind first.
KINDS = ("content", "number", "symbol", "code", "path", "tech", "platform", "negation", "quantifier", "position", "direction",
         "order", "person", "question", "word")

# -- vocabulary of the kinds ------------------------------------------------------------------

_WORD_NUMBERS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000,
    "twice": 2, "double": 2, "triple": 3, "half": 0.5, "dozen": 12, "second": "2nd", "third": "3rd",
}
_UNITS = {"s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s", "ms": "ms", "millisecond": "ms",
          "milliseconds": "ms", "min": "min", "mins": "min", "minute": "min", "minutes": "min", "h": "h",
          "hr": "h", "hrs": "h", "hour": "h", "hours": "h", "day": "d", "days": "d", "byte": "b", "bytes": "b",
          "bit": "bit", "bits": "bit", "kb": "kb", "mb": "mb", "gb": "gb", "tb": "tb", "px": "px", "%": "%",
          "percent": "%", "k": "k", "x": "x", "gib": "gib", "mib": "mib"}

# Languages, tools, frameworks, data formats. Aliases map to one name.
_TECH_ALIASES = {
    "js": "javascript", "ecmascript": "javascript", "node": "nodejs", "node.js": "nodejs", "ts": "typescript",
    "py": "python", "python3": "python", "golang": "go", "postgres": "postgresql", "psql": "postgresql",
    "pg": "postgresql", "postgre": "postgresql", "mongo": "mongodb", "k8s": "kubernetes", "kubectl": "kubernetes",
    "c#": "csharp", "c++": "cpp", "react.js": "react", "reactjs": "react", "vue.js": "vue", "vuejs": "vue",
    "next.js": "nextjs", "nuxt.js": "nuxt", "express.js": "express", "expressjs": "express", "tf": "terraform",
    "gh": "github", "regexp": "regex", "regexes": "regex", "vs code": "vscode", "mssql": "sqlserver",
    "sh": "shell", "bash": "bash", "zsh": "zsh", "docker-compose": "compose", "yml": "yaml", "sass": "scss",
}
_TECH = set(_TECH_ALIASES.values()) | {
    "python", "java", "kotlin", "scala", "rust", "ruby", "php", "perl", "swift", "c", "haskell", "elixir", "erlang",
    "clojure", "lua", "r", "julia", "dart", "matlab", "fortran", "zig", "ocaml", "powershell", "fish", "sql",
    "mysql", "sqlite", "redis", "cassandra", "dynamodb", "oracle", "mariadb", "elasticsearch", "kafka", "rabbitmq",
    "duckdb", "snowflake", "bigquery", "react", "angular", "svelte", "django", "flask", "fastapi", "rails",
    "laravel", "spring", "nestjs", "jquery", "tailwind", "bootstrap", "pandas", "numpy", "pytorch", "tensorflow",
    "jax", "spark", "airflow", "sqlalchemy", "pydantic", "celery", "git", "gitlab", "docker", "podman",
    "helm", "ansible", "aws", "gcp", "azure", "nginx", "apache", "vim", "neovim", "emacs", "webpack", "vite",
    "babel", "eslint", "prettier", "jest", "pytest", "unittest", "mocha", "cypress", "selenium", "playwright",
    "maven", "gradle", "cargo", "make", "cmake", "gcc", "clang", "llvm", "jvm", "wasm", "graphql", "grpc",
    "http", "https", "tcp", "udp", "ssh", "ssl", "tls", "dns", "json", "toml", "xml", "csv", "html",
    "css", "markdown", "pip", "npm", "yarn", "pnpm", "poetry", "conda", "curl", "wget", "jq", "sed", "awk",
    "grep", "tmux", "cron", "crontab", "systemd", "mypy", "ruff", "black", "flake8", "terraform", "chrome",
    "firefox", "safari", "excel", "cuda", "lodash", "axios", "express", "go", "compose", "scp", "rsync",
    "openssl", "ffmpeg", "mypy", "vscode", "intellij", "xcode", "homebrew", "brew", "apt", "yum", "dnf",
}
# Tool names that are also plain English: they count as tools only written as a name ("Go",
# "Make") or introduced as one ("in go", "with make"); otherwise they are words.
_AMBIGUOUS_TECH = {"go", "make", "r", "c", "swift", "spring", "express", "rails", "apache", "oracle", "spark",
                   "fish", "jest", "black", "node", "sh", "chrome", "brew", "rest", "mocha"}
_PLATFORMS = {
    "linux": "linux", "windows": "windows", "win": "windows", "win10": "windows", "win11": "windows",
    "macos": "macos", "osx": "macos", "mac": "macos", "darwin": "macos", "ubuntu": "ubuntu", "debian": "debian",
    "centos": "centos", "fedora": "fedora", "alpine": "alpine", "arch": "archlinux", "rhel": "rhel",
    "freebsd": "freebsd", "wsl": "wsl", "wsl2": "wsl", "android": "android", "ios": "ios", "iphone": "ios",
    "ipad": "ios", "arm": "arm", "arm64": "arm64", "aarch64": "arm64", "amd64": "x86_64", "x64": "x86_64",
    "x86_64": "x86_64", "x86": "x86", "i386": "x86", "32-bit": "32bit", "64-bit": "64bit", "raspbian": "raspbian",
}
_QUANTIFIERS = {"all": "all", "every": "all", "each": "all", "entire": "all", "whole": "all", "everything": "all",
                "any": "any", "anything": "any", "some": "some", "several": "some", "few": "some",
                "one": "one", "single": "one", "none": "none", "both": "both", "either": "either",
                "only": "only", "multiple": "many",
                "many": "many", "globally": "global", "global": "global", "locally": "local", "system-wide": "global"}
_POSITIONS = {"first": "first", "initial": "first", "earliest": "first", "oldest": "first", "top": "top",
              "last": "last", "final": "last", "latest": "last", "newest": "last", "bottom": "bottom",
              "previous": "previous", "next": "next", "middle": "middle", "nth": "nth"}
# Direction words point at what follows them; a pair of the same class is one relation.
_DIRECTIONS = {"to": "to", "into": "to", "onto": "to", "toward": "to", "towards": "to", "from": "from",
               "than": "than", "before": "before", "after": "after", "instead": "instead", "over": "over",
               "above": "above", "below": "below", "inside": "inside", "outside": "outside", "within": "inside",
               "against": "against"}
_NEGATIONS = {"not", "no", "never", "without", "cannot", "neither", "nor", "nothing", "non"}
_QUESTIONS = {"why": "why", "where": "where", "when": "when", "who": "who", "whom": "who", "whose": "who"}

# Words that change no answer: function words, the asking itself, generic nouns of a request.
_FILLER = set("""
a an the i me my mine myself we us our ours you your yours yourself it its itself this that these those
he him his she her they them their there here is are was were be been being am do does did doing done
can could should would will shall may might must have has had having how what whats which of in on at
for with by about as and or but so if then also too very really actually exactly quite simply basically
please way ways most between thing things something someone somebody anyone anybody kind sort type certain particular
specific specifically correct proper properly right good best better recommended idiomatic standard
possible able go going want wanted need needed would try trying tell explain
explanation describe description me help understand wondering wonder
command commands syntax code example examples method approach use used using via through up out
new brand clearly simple simplest even still again already currently
just well ok okay oh oops hey hi hello thanks thank appreciated much lot advance sorry bother grateful
kindly remind give provide let lets mean means meant meaning purpose happen happens does
look looks exist exists available actually automatically manually correctly exactly
""".split())
_FILLER |= {"what's", "how's", "it's", "that's"}

# Courtesy and framing around the question: removed before reading.
_COURTESY = [re.compile(p, re.I) for p in (
    r"^\s*(?:hi|hello|hey|good (?:morning|afternoon|evening)|greetings)(?: there| all| everyone)?\s*[,!.:-]*\s*",
    r"\b(?:thanks|thank you|thx|ty|cheers)(?: (?:so|very) much| a lot| in advance| a bunch)?\s*[.!]*",
    r"\b(?:any help (?:is |would be )?(?:much |greatly )?appreciated|much appreciated)\s*[.!]*",
    r"\bsorry(?: if this is (?:a )?(?:basic|dumb|stupid|obvious)(?: question)?| to bother you| for the (?:basic|dumb) question)?\s*[,.!]*",
    r"\b(?:quick|simple|dumb|basic|stupid) question\s*[:,.!-]*",
    r"\bquick one\s*[:,.!-]*",
    r"\b(?:i (?:would|'d) be (?:very |really )?grateful if you could|would you mind|"
    r"(?:could|can|would|will) you(?: please| kindly)?|i was wondering|i'm wondering|i need (?:some )?help(?: with)?|"
    r"please|pls|plz)\b\s*[,:]?",
    r"\b(?:tell|show|remind|teach) me\b",
    r"\b(?:help me|let me know|i'd like to know|i want to know|i would like to know)\b",
    r"\bgo about\b",
)]
_CONTRACTIONS = [(re.compile(p, re.I), r) for p, r in (
    (r"\b(can)'?t\b", r"\1 not"), (r"\bwon'?t\b", "will not"), (r"n't\b", " not"), (r"'re\b", " are"),
    (r"'ve\b", " have"), (r"'ll\b", " will"), (r"\bi'm\b", "I am"), (r"'d\b", " would"),
    (r"\b(what|that|it|there|here|who|where|how|when|why|which|she|he)'s\b", r"\1 is"),
    (r"(?<=\w)'s\b", ""),                       # possessive: "Python's" names Python
    (r"\bw/o\b", "without"), (r"\bw/(?=\s)", "with"), (r"\bb/c\b", "because"),
)]
# Abbreviations and phrases written several ways: one form each (applied to lowercased words).
_PHRASES = [(re.compile(r"\b(?:" + p + r")\b"), r) for p, r in (
    (r"command[- ]line|cli|terminal|console", "commandline"), (r"regular expressions?", "regex"),
    (r"pull requests?|prs?|merge requests?|mrs?", "pullrequest"), (r"continuous integration|ci", "ci"),
    (r"environment variables?|env vars?|env variables?", "envvar"), (r"virtual ?env(?:ironment)?s?|venvs?", "venv"),
    (r"most recent|most recently|newest|latest", "last"), (r"change the name of", "rename"),
    (r"get rid of|eliminate|erase|rm", "remove"), (r"how many|the number of|number of|count of", "count"),
    (r"diff between", "difference between"), (r"differ from|different from|differs from", "differ"), (r"find out|figure out|work out", "find"),
    (r"turn on|switch on", "enable"), (r"turn off|switch off", "disable"), (r"set up|setup", "configure"),
    (r"out of|off of", "from"), (r"instead of", "instead"), (r"as well as", "and"), (r"in order to", "to"),
    (r"is there a", ""), (r"are there", ""), (r"on-disk|on disk", "disk"), (r"hard drive|hard disk", "disk"),
    (r"file system|filesystem", "filesystem"), (r"look like|looks like", ""), (r"up to date|up-to-date", "uptodate"),
)]
_ABBREVIATIONS = {
    "db": "database", "dbs": "database", "dir": "directory", "dirs": "directory", "folder": "directory",
    "folders": "directory", "env": "environment", "var": "variable", "vars": "variable", "arg": "argument",
    "args": "argument", "param": "parameter", "params": "parameter", "func": "function", "fn": "function",
    "funcs": "function", "obj": "object", "lib": "library", "libs": "library", "repo": "repository",
    "repos": "repository", "config": "configure", "cfg": "configure", "conf": "configure", "configuration": "configure",
    "ns": "namespace", "req": "request", "reqs": "request", "resp": "response", "res": "response",
    "msg": "message", "msgs": "message", "num": "number", "max": "maximum", "min": "minimum", "prod": "production",
    "dev": "development", "impl": "implementation", "info": "information", "defs": "definition",
    "def": "definition", "deps": "dependency", "dep": "dependency", "cmd": "command", "exe": "executable",
    "pkg": "package", "pkgs": "package", "ver": "version", "doc": "documentation", "docs": "documentation",
    "auth": "authenticate", "authn": "authenticate", "app": "application", "apps": "application",
    "u": "you", "ur": "your", "im": "i", "idx": "index", "len": "length", "str": "string", "int": "integer",
    "bool": "boolean", "dict": "dictionary", "dicts": "dictionary", "ram": "memory", "mem": "memory",
    "perf": "performance", "async": "asynchronous", "sync": "synchronous", "temp": "temporary", "tmp": "temporary",
    "w": "with", "b": "be", "r": "are", "thru": "through", "tho": "though", "pwd": "password", "passwd": "password",
    "btw": "", "fyi": "", "pls": "", "plz": "",
}
# Words (stemmed) that say the same thing in a question. Each set is one meaning; a word that
# also has an opposite (stop/kill, drop/delete) stays out of a set it does not always equal.
_SYNONYMS = [
    {"remov", "delet", "eras", "elimin", "purg"}, {"creat", "make", "generat", "build", "write", "implement",
     "produc", "craft", "construct"}, {"show", "display", "view", "see", "list", "print", "output", "dump"},
    {"check", "verifi", "determin", "find", "detect", "identifi", "test", "tell", "confirm", "know"},
    {"get", "got", "obtain", "retriev", "grab", "fetch", "access", "extract"}, {"set", "defin", "assign", "specifi"},
    {"differ", "compar", "vs", "versus", "contrast"},
    {"stop", "halt", "termin", "abort", "end", "cancel", "kill"}, {"exit", "quit", "leav"},
    {"start", "begin", "launch", "kick"}, {"chang", "modifi", "alter", "edit", "updat", "adjust", "tweak"},
    {"size", "length"}, {"larg", "big", "huge"}, {"small", "littl", "tini"}, {"fast", "quick", "rapid", "speedi", "effici", "fastest", "quickest", "faster", "quicker", "quick"},
    {"slow", "sluggish"}, {"error", "except", "failur"}, {"bug", "issu", "problem", "defect"},
    {"fix", "solv", "resolv", "repair", "correct"}, {"directori", "folder"}, {"argument", "paramet"},
    {"option", "flag", "switch"}, {"program", "applic", "execut", "binari", "app", "script"},
    {"concaten", "concat", "join", "combin"}, {"duplic", "dup", "dupe"}, {"element", "item", "entri", "member"},
    {"memori", "ram"}, {"limit", "cap", "restrict", "constrain", "bound"}, {"consum", "use", "util", "take", "occupi"},
    {"hung", "hang", "frozen", "freez", "stuck", "unrespons"}, {"skip", "ignor", "omit", "exclud"},
    {"keep", "preserv", "retain", "maintain"}, {"clear", "wipe", "clean", "purg", "flush"},
    {"run", "execut"}, {"time", "measur", "durat", "long"}, {"replac", "substitut", "swap"},
    {"split", "separ", "divid", "break"}, {"sort", "order"}, {"rememb", "recal"}, {"mistak", "wrong"},
    {"convert", "transform", "turn", "cast", "chang"}, {"fail", "break", "crash"}, {"rid", "remov"},
    {"contain", "includ", "has"}, {"count", "tal", "number"}, {"folder", "directori"},
    {"machin", "comput", "host", "box", "server"}, {"tabl", "relat"}, {"undo", "revert", "rollback", "roll"},
    {"stage", "add"}, {"instal", "setup"}, {"updat", "upgrad"}, {"track", "follow"}, {"locat", "find", "search", "look"},
    {"wait", "sleep", "paus", "delay"}, {"open", "launch"}, {"learn", "studi"}, {"improv", "better", "enhanc", "boost"},
    {"earn", "make"}, {"money", "cash", "incom"}, {"book", "novel"}, {"job", "career"}, {"movi", "film"},
    {"countri", "nation"}, {"possibl", "feasibl"}, {"benefit", "advantag", "pro"}, {"drawback", "disadvantag", "con"},
]
_STEMMER = SnowballStemmer("english")

# -- reading ------------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"`([^`]+)`")
_PATH = re.compile(r"(?<![\w/.\-])(?:[A-Za-z]:)?(?:~|\.{1,2})?/?[\w.\-]++(?:/[\w.\-]++)*/[\w.\-*]++/?|(?<![\w/])/[\w.\-]+(?=[\s,;:!?)]|$)|"
                   r"(?<![\w/\-])[\w\-]*+\.(?:py|js|mjs|cjs|ts|tsx|jsx|go|rs|rb|java|kt|c|h|cpp|hpp|cs|php|sh|bash|md|"
                   r"json|ya?ml|toml|ini|cfg|txt|csv|html?|css|scss|sql|lock|xml|env|conf|log|swift|scala|lua|gradle|vue|"
                   r"svelte|jpe?g|png|gif|svg|pdf|zip|tar|gz|tgz|exe|dll|so|whl|ipynb|proto|tf|dockerfile)\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:\s?(?:%|ms|seconds?|secs?|s|minutes?|mins?|hours?|hrs?|h|"
                     r"days?|kb|mb|gb|tb|k|px|x|gib|mib|bytes?|bits?|percent)\b|%)?(?![\w.]*\w)", re.I)
_VERSIONED = re.compile(r"\b(v?\d+(?:\.\d+)+[a-z0-9]*|v\d+)\b", re.I)
_TOKEN = re.compile(r"--?[A-Za-z][\w\-]*|(?:[^\W\d]|[_$])[\w$]*(?:(?:[.:]{1,2}|->|-)(?:[^\W\d]|[_$])[\w$]*)*(?:\(\))?"
                    r"|\d+(?:\.\d+)*|[#+]{1,2}|[?]")
_OPERATOR = re.compile(r"(?<![\w\s])?(?:[=!<>&|+\-*/%^~:?.]{2,}|\?)(?![\w])|(?<=\s)[=<>!&|^~%*/+\-](?=\s)")
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z]{2,}[a-z]|[a-z][0-9]")


@dataclass(frozen=True, slots=True)
class Token:
    text: str          # the form compared (stemmed, synonym class)
    kind: str
    raw: str           # as written, for explanations


@dataclass(frozen=True, slots=True)
class Reading:
    tokens: tuple      # Token, in order (filler included: direction arguments skip it)
    numbers: tuple     # in order
    symbols: str       # the operators and brackets written, sorted: code carries meaning there


@dataclass(frozen=True, slots=True)
class Refusal:
    rule: str          # a kind, or "direction" for a swapped relation
    a: tuple           # the tokens (as written) of the first prompt the second does not match
    b: tuple

    def __str__(self) -> str:
        return f"{self.rule}: {' '.join(self.a) or '∅'} ≠ {' '.join(self.b) or '∅'}"


def _stem(word: str) -> str:
    return _STEMMER.stem_word(word)


_SYNONYM_OF: dict[str, str] = {}
for _group in _SYNONYMS:
    _name = min(_group)
    for _w in _group:
        _SYNONYM_OF.setdefault(_w, _name)


def _is_code(tok: str) -> bool:
    core = tok.rstrip("()")
    if tok.startswith("-") and len(tok) > 1 or tok.endswith("()") or tok.startswith("$"):
        return True                                   # flags, calls, shell variables
    if "_" in core.strip("_") or "::" in core or "->" in core or ("." in core and not core.endswith(".")):
        return True                                   # snake_case, Foo::bar, JSON.stringify
    if _CAMEL.search(core) and not core.isupper():
        return True                                   # camelCase, utf8, es6
    if core.isupper() and len(core) >= 2 and any(c.isalpha() for c in core):
        return True                                   # SELECT, ENOENT, COPY
    return False


def _normalise(text: str) -> str:
    text = (text or "").replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    for pattern in _COURTESY:
        text = pattern.sub(" ", text)
    return text


_SYMBOL = re.compile(r"[+\-*/%=<>!&|^~{}\[\]()#@$\\;]")
# Marks of prose, not of code: sentence ends, word-inner hyphens and slashes ("if-else", "w/o").
_PROSE_MARKS = re.compile(r"[?!.]+(?=\s|$)|(?<=\w)[-/'](?=\w)|\(\)|^[-*#]\s|\s-\s")
_SENTENCE = re.compile(r"(?<=[?!.])\s+|[?!]+(?=\S)|[;:]\s+(?=[A-Z])")
# A sentence that opens with one of these asks for something to be produced or shown: the verb
# frames the request ("Write a regex that …" asks what "What regex …" asks).
_FRAMING = {"show", "give", "tell", "explain", "describe", "list", "provide", "write", "create", "generate",
            "implement", "suggest", "recommend"}
_YESNO = {"is", "are", "was", "were", "do", "does", "did", "can", "could", "should", "will", "would", "has",
          "have", "am", "shall", "may", "might", "must", "isnt", "arent", "doesnt", "dont"}
_PAST = {"did", "was", "were", "had"}
_SECOND_PERSON = re.compile(r"\b(?:you|your|yours|yourself)\b", re.I)
_FIRST_PERSON = re.compile(r"\b(?:my|mine|myself|me)\b", re.I)
_PROCEDURAL_I = re.compile(r"\b(?:show|tell|give|help|get) me\b|\bmy (?:own )?(?:code|project|app|repo|repository|"
                           r"machine|computer|laptop|terminal|shell|branch|changes?|commits?|script|program|files?)\b", re.I)
_QUOTED = re.compile(r"\"([^\"]{1,200})\"|(?<![A-Za-z])'([^']{1,200})'(?![A-Za-z])")
_PROCEDURAL_YOU = re.compile(r"\bhow (?:do|can|could|would|should|will|to) you\b|\b(?:do|can|could|would|should) you\b", re.I)


@remembered(max_entries=4096)
def read(text: str) -> Reading:
    """The typed tokens of one prompt (cached: a cached question is read once)."""
    text = _normalise(text[:READ_LIMIT]).replace("`", " ")
    symbols = "".join(sorted(_SYMBOL.findall(_PROSE_MARKS.sub(" ", text))))
    tokens: list[Token] = []
    numbers: list[str] = []
    asked = sum(1 for q in re.split(r"\?+[!?]*", text)[:-1] if q.strip()) if "?" in text else 0
    # The reader is addressed ("what is your …", "have you …"), not asked how one does a thing.
    if _SECOND_PERSON.search(_PROCEDURAL_YOU.sub(" ", text)):
        tokens.append(Token("you", "person", "you"))
    if _FIRST_PERSON.search(_PROCEDURAL_I.sub(" ", text)):
        tokens.append(Token("me", "person", "I/my"))
    for m in _QUOTED.finditer(text):
        quoted = " ".join(next(g for g in m.groups() if g).lower().split())
        tokens.append(Token(quoted, "code", m.group(0)))
    if asked > 1:
        tokens.append(Token(f"{asked} questions", "question", f"{asked} questions"))
    # A path stands where it was written (as a placeholder word), so "copy a.txt to b.txt" has
    # a direction like any other sentence.
    paths = [m.group(0) for m in _PATH.finditer(text)]
    text = _PATH.sub(lambda m: f" __path{len(_placeholders(text, m))}__ ", text) if paths else text
    for m in _VERSIONED.finditer(text):
        numbers.append(m.group(1).lower().lstrip("v"))
    text = _VERSIONED.sub(" ", text)
    for m in _NUMBER.finditer(text):
        numbers.append(_number(m.group(0)))
    text = _NUMBER.sub(" ", text)
    for sentence in _SENTENCE.split(text):
        sentence = re.sub(r"[?!.,]+(?=\s|$)", " ", sentence)
        for op in _OPERATOR.findall(sentence):
            tokens.append(Token(op.strip(), "code", op.strip()))
        tokens += _read_sentence(sentence, numbers, paths)
    return Reading(tokens=tuple(tokens), numbers=tuple(numbers), symbols=symbols)


def _placeholders(text: str, m: re.Match) -> list:
    return _PATH.findall(text, 0, m.start())


def _read_sentence(sentence: str, numbers: list, paths: list) -> list:
    words = [w for w in _TOKEN.findall(sentence) if w != "?"]
    lowered = " ".join(w.lower() for w in words)
    for pattern, repl in _PHRASES:
        lowered = pattern.sub(repl, lowered)
    low_words = lowered.split()
    raw_of = {w.lower(): w for w in words}
    out = []
    for i, low in enumerate(low_words):
        raw = raw_of.get(low, low)
        placeholder = _PLACEHOLDER.fullmatch(low)
        if placeholder:
            path = paths[int(placeholder.group(1))]
            out.append(Token(path.lower().rstrip("/"), "path", path))
            continue
        if i == 0 and low == "how" and re.search(r"\bwork(?:s|ing)?\b", lowered):
            out.append(Token("how … work", "question", "how … work"))
        if i == 0 and low in _QUESTIONS:
            out.append(Token(_QUESTIONS[low], "question", raw))
            continue
        if i == 0 and low in _YESNO:
            out.append(Token("yes/no", "question", raw))
        if i == 0 and low in _PAST or i == 1 and low in _PAST and low_words[0] in _WH:
            out.append(Token("past", "question", raw))
        if i == 0 and low in _FRAMING:
            continue
        tok = _classify(raw, low, low_words[i - 1] if i else "", i, numbers)
        if tok is not None:
            out.append(tok)
    return out


_PLACEHOLDER = re.compile(r"__path(\d+)__")
_WH = {"what", "how", "which", "why", "where", "when", "who"}


def _number(text: str) -> str:
    m = re.fullmatch(r"([-+]?\d+(?:[.,]\d+)*)\s*([a-z%]*)", text.strip().lower())
    if not m:
        return text.strip().lower()
    value, unit = m.groups()
    return value.lstrip("+").replace(",", "") + _UNITS.get(unit, unit)


def _classify(raw: str, low: str, before: str, i: int, numbers: list) -> Token | None:
    low = _ABBREVIATIONS.get(low, low)
    if not low:
        return None
    if low in _WORD_NUMBERS and not (low == "second" and before in ("a", "one", "per", "every")):
        numbers.append(str(_WORD_NUMBERS[low]))
        return None
    if low in _NEGATIONS:
        return Token("not", "negation", raw)
    if low in _QUANTIFIERS:
        return Token(_QUANTIFIERS[low], "quantifier", raw)
    if low in _POSITIONS:
        return Token(_POSITIONS[low], "position", raw)
    if low in _DIRECTIONS:
        return Token(_DIRECTIONS[low], "direction", raw)
    if low in _QUESTIONS:
        return Token(_QUESTIONS[low], "question", raw)
    if low in _PLATFORMS:
        return Token(_PLATFORMS[low], "platform", raw)
    tech = _TECH_ALIASES.get(low, low)
    if tech in _TECH and (tech not in _AMBIGUOUS_TECH and low not in _AMBIGUOUS_TECH
                          or raw[:1].isupper() and i > 0
                          or before in ("in", "with", "using", "via", "for", "of", "from")):
        return Token(tech, "tech", raw)
    if _is_code(raw) and low not in _FILLER:
        return Token(low.rstrip("()"), "code", raw)
    if low in _FILLER or low == "?":
        return Token(low, "filler", raw)
    stem = _stem(low)
    if raw[:1].isupper() and i > 0 and not raw.isupper():
        return Token(_SYNONYM_OF.get(stem, stem), "name", raw)
    return Token(_SYNONYM_OF.get(stem, stem), "word", raw)


# -- comparing ----------------------------------------------------------------------------------

def _typo(w: str, other: set[str]) -> str | None:
    """The word of `other` that `w` misspells: same first letter, one edit (two for long words)."""
    if len(w) < 4 or not w.isascii():
        return None                   # a keyboard slip in a Latin-script word; other scripts match exactly
    for o in other:
        if o[:1] == w[:1] and abs(len(o) - len(w)) <= 2 and len(o) >= 4:
            limit = 2 if min(len(w), len(o)) >= 8 else 1
            if DamerauLevenshtein.distance(w, o, score_cutoff=limit) <= limit:
                return o
    return None


def _aligned(ra: Reading, rb: Reading) -> tuple[list, list]:
    """Both token lists, a word one side misspells and the other spells right made one token."""
    text_a, text_b = {t.text for t in ra.tokens}, {t.text for t in rb.tokens}
    loose = ("word", "name", "tech", "platform")
    only_a = [t for t in ra.tokens if t.kind in loose and t.text not in text_b]
    only_b = [t for t in rb.tokens if t.kind in loose and t.text not in text_a]
    same: dict[Token, Token] = {}
    for ta in only_a:
        for tb in only_b:
            if tb in same:
                continue
            if any(_typo(x, {y}) for x, y in ((ta.raw.lower(), tb.raw.lower()), (ta.text, tb.text))):
                # The known spelling wins: a tool's name over a word nobody listed.
                canon = tb if tb.kind in ("tech", "platform") or ta.kind == "name" and tb.kind == "word" else ta
                same[ta] = same[tb] = Token(canon.text, canon.kind, canon.raw)
                break
    return [same.get(t, t) for t in ra.tokens], [same.get(t, t) for t in rb.tokens]


def refusal(a: str, b: str) -> Refusal | None:
    """Why `a` and `b` may want different answers (the first rule that differs), or None."""
    if a == b:
        return None
    if max(len(a), len(b)) > READ_LIMIT:
        return Refusal("content", ("longer than the guard reads",), ())
    ra, rb = read(a), read(b)
    # A prompt with nothing to compare (emoji, punctuation) matches only itself.
    empty_a = not ra.numbers and all(t.kind == "filler" for t in ra.tokens)
    empty_b = not rb.numbers and all(t.kind == "filler" for t in rb.tokens)
    if empty_a or empty_b:
        return Refusal("content", ("nothing to compare",) if empty_a else (), ("nothing to compare",) if empty_b else ())
    if ra.symbols != rb.symbols:
        return Refusal("symbol", tuple(ra.symbols), tuple(rb.symbols))
    if ra.numbers != rb.numbers:
        common = set(ra.numbers) & set(rb.numbers)
        only = tuple(n for n in ra.numbers if n not in common), tuple(n for n in rb.numbers if n not in common)
        return Refusal("number", *(only if any(only) else (ra.numbers, rb.numbers)))
    ta, tb = _aligned(ra, rb)
    for kind in KINDS[1:]:
        if kind == "negation":
            na, nb = [t for t in ta if t.kind == kind], [t for t in tb if t.kind == kind]
            if len(na) != len(nb):
                return Refusal(kind, tuple(t.raw for t in na), tuple(t.raw for t in nb))
            continue
        if kind == "direction":
            swap = _swapped(ta, tb)
            if swap is not None:
                return swap
            # "to" is also the infinitive: only its swapped relations count, other directions by name.
            da = {t.text for t in ta if t.kind == kind} - {"to"}
            db = {t.text for t in tb if t.kind == kind} - {"to"}
            if da != db:
                return Refusal(kind, tuple(sorted(da - db)), tuple(sorted(db - da)))
            continue
        if kind == "order":
            swap = _order_swapped(ta, tb) or _order_swapped(tb, ta)
            if swap is not None:
                return swap
            continue
        sa = {_kind_key(t) for t in ta if _kind_of(t) == kind}
        sb = {_kind_key(t) for t in tb if _kind_of(t) == kind}
        if sa != sb:
            return Refusal(kind, tuple(dict.fromkeys(t.raw for t in ta if _kind_of(t) == kind and _kind_key(t) not in sb)),
                           tuple(dict.fromkeys(t.raw for t in tb if _kind_of(t) == kind and _kind_key(t) not in sa)))
    return None


def _kind_of(t: Token) -> str:
    # A name and a word are one kind for matching: "Self Esteem" and "self-esteem" agree.
    return "word" if t.kind == "name" else t.kind


def _kind_key(t: Token) -> str:
    return t.text


def check(a: str, b: str, similarity: float | None = None) -> str | None:
    """None if `a` and `b` may share an answer; otherwise the refusal as text. Symmetric in
    outcome. `similarity` is accepted for the caller's convenience and does not relax any rule."""
    r = refusal(a, b)
    return None if r is None else str(r)


def _relations(tokens: list) -> dict[str, dict[str, str]]:
    """What each direction word points at: the next content token after it (its text → as written)."""
    out: dict[str, dict[str, str]] = {}
    for i, t in enumerate(tokens):
        if t.kind != "direction":
            continue
        target = next((u for u in tokens[i + 1:] if u.kind not in ("filler", "quantifier", "position")), None)
        if target is not None and target.kind != "direction":
            out.setdefault(t.text, {})[target.text] = target.raw
    return out


_OPPOSITE_DIRECTION = {"to": "from", "from": "to", "before": "after", "after": "before", "above": "below",
                       "below": "above", "inside": "outside", "outside": "inside"}


def _swapped(ta: list, tb: list) -> Refusal | None:
    """Two prompts with the same words whose direction words point at different ends: a word one
    side sends somewhere ("to X") the other names elsewhere while pointing that direction at
    another word it shares — or points the opposite direction at the same word."""
    ra, rb = _relations(ta), _relations(tb)
    words_a, words_b = {t.text for t in ta}, {t.text for t in tb}
    for d in set(ra) | set(rb):
        xa, xb = ra.get(d, {}), rb.get(d, {})
        gone = sorted(w for w in xa.keys() - xb.keys() if w in words_b)
        came = sorted(w for w in xb.keys() - xa.keys() if w in words_a)
        if gone and came:
            return Refusal("direction", tuple(f"{d} {xa[w]}" for w in gone), tuple(f"{d} {xb[w]}" for w in came))
        opposite = rb.get(_OPPOSITE_DIRECTION.get(d, ""), {})
        if xa.keys() & opposite.keys():
            w = min(xa.keys() & opposite.keys())
            return Refusal("direction", (f"{d} {xa[w]}",), (f"{_OPPOSITE_DIRECTION[d]} {opposite[w]}",))
    return None


_ENTITIES = ("name", "tech", "platform", "code")
_CONNECTORS = {"and", "or", "between", "with", "both", "either", _SYNONYM_OF["differ"]}


def _order_swapped(ta: list, tb: list) -> Refusal | None:
    """Two names of the same kind in the other order, not joined as equals ("A and B", "A vs B")
    in either prompt: "people in Denver about Seattle" vs "people in Seattle about Denver"."""
    pos_b = {}
    for i, t in enumerate(tb):
        pos_b.setdefault((t.kind, t.text), i)
    ents = [(i, t) for i, t in enumerate(ta) if t.kind in _ENTITIES and (t.kind, t.text) in pos_b]
    for n, (i, x) in enumerate(ents):
        for j, y in ents[n + 1:]:
            if x.kind != y.kind or x.text == y.text or pos_b[(x.kind, x.text)] < pos_b[(y.kind, y.text)]:
                continue
            bi, bj = pos_b[(y.kind, y.text)], pos_b[(x.kind, x.text)]
            if _joined(ta[i + 1:j]) or _joined(tb[bi + 1:bj]):
                continue
            return Refusal("order", (f"{x.raw} … {y.raw}",), (f"{y.raw} … {x.raw}",))
    return None


def _joined(between: list) -> bool:
    return all(t.kind == "filler" or t.text in _CONNECTORS for t in between)


_TECHNICAL = ("tech", "code", "path", "platform")


def technical(text: str) -> bool:
    """Whether a prompt names a tool, language, platform, identifier or path: the guard's
    accounting is strongest there. Everyday questions carry their meaning in function words too
    (who asks, tense, "this" vs "a"), so the stage asks a higher similarity of them."""
    return any(t.kind in _TECHNICAL for t in read(text).tokens)


def summary(text: str) -> dict[str, list[str]]:
    """The question as the guard reads it, by kind (for `lynkr explain`): what a cached question
    must match for a hit."""
    r = read(text[:READ_LIMIT])
    out: dict[str, list[str]] = {"number": list(r.numbers)} if r.numbers else {}
    for t in r.tokens:
        if t.kind != "filler":
            out.setdefault(t.kind, [])
            if t.raw not in out[t.kind]:
                out[t.kind].append(t.raw)
    return out


# The kinds the guard compares exactly, without aligning misspellings.
_SIGNED = ("code", "path", "quantifier", "position")


def signature(text: str) -> str:
    """What every question the guard could let `text` match shares with it exactly: its symbols,
    its numbers in order, its code, paths, quantifiers and positions, its count of negations. Two
    questions with different signatures never pass the guard, so the cache embeds a question only
    when a stored question has its signature."""
    if len(text) > READ_LIMIT:
        return "long:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    r = read(text)
    parts = [r.symbols, "|".join(r.numbers), str(sum(1 for t in r.tokens if t.kind == "negation"))]
    for kind in _SIGNED:
        parts.append(",".join(sorted({t.text for t in r.tokens if t.kind == kind})))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
