"""Writes the fresh semantic-cache sets: cache-fresh-coding.jsonl and cache-fresh-general.jsonl.

    python benchmarks/data/make_fresh_cache.py        # deterministic (seeded); rewrites both files

Written after the guard's rules were frozen (commit 0a9ce3a) and never used to change them. The
tasks, slot vocabularies, paraphrase operations and near-miss edits below were written for this
file, not taken from ../shared/eval: each coding task is a template with typed slots (a tool, a
language, a file, a number, an OS …); a paraphrase re-renders the same slots through another
wording of the task and an operation a person applies (reordering, casing and punctuation, random
keyboard typos, common abbreviations, courtesy padding, another sentence form, synonyms, or several
at once = heavy); a hard negative re-renders the task with ONE slot changed in the way its category
says (another number or version, identifier, path, OS, language; a negation; swapped direction; a
different quantifier, scope or intent; another error message). The general set does the same for
everyday questions (places, people, skills, quantities, who is asked) in the style of Quora.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
rng = random.Random(20261206)

# -- coding tasks: (wordings..., slots) ------------------------------------------------------
# Each wording is a format string over the slots; wordings of one task ask the same thing.
TASKS = [
    (["How do I list the open ports on {os}?", "On {os}, which command shows the ports that are open?",
      "Show me the listening ports on a {os} box."], {"os": "os"}),
    (["How can I read a {fmt} file in {lang}?", "What's the way to parse a {fmt} file using {lang}?",
      "In {lang}, load a {fmt} file."], {"fmt": "fmt", "lang": "lang"}),
    (["How do I kill the process using port {port}?", "Terminate whatever is listening on port {port}.",
      "What command stops the program bound to port {port}?"], {"port": "port"}),
    (["Why does {func} return None in my code?", "My function {func} keeps returning None, why?",
      "What makes {func} give back None?"], {"func": "func"}),
    (["How do I rename the file {file} in git?", "Using git, rename {file}.", "What's the git way to rename {file}?"],
     {"file": "file"}),
    (["How do I pin {pkg} to version {ver} with pip?", "Install exactly version {ver} of {pkg} using pip.",
      "With pip, how can I lock {pkg} at {ver}?"], {"pkg": "pkg", "ver": "ver"}),
    (["How do I schedule a job every {n} minutes with cron?", "Write a crontab line that runs every {n} minutes.",
      "Cron: run a script each {n} minutes."], {"n": "n"}),
    (["What does the {flag} flag of {cmd} do?", "Explain {cmd} {flag}.", "Meaning of {flag} in {cmd}?"],
     {"flag": "flag", "cmd": "cmd"}),
    (["How do I reverse a string in {lang}?", "Reverse a string using {lang}.", "In {lang}, what's the way to flip a string backwards?"],
     {"lang": "lang"}),
    (["How can I check which version of {tool} is installed?", "Find out the installed {tool} version.",
      "What command prints the {tool} version?"], {"tool": "tool"}),
    (["How do I fix the error {err}?", "I keep hitting {err}; how do I solve it?", "What causes {err} and how do I get rid of it?"],
     {"err": "err"}),
    (["How do I move {src} into {dst} with rsync?", "Using rsync, copy {src} to {dst}.", "rsync {src} over to {dst}: what's the command?"],
     {"src": "place", "dst": "place"}),
    (["How do I convert {a} to {b} in {lang}?", "In {lang}, turn {a} into {b}.", "What's the {lang} code to change {a} into {b}?"],
     {"a": "dtype", "b": "dtype", "lang": "lang"}),
    (["How do I {quant} the rows where {col} is empty in a SQL table?", "SQL: {quant} rows with an empty {col}.",
      "Write SQL to {quant} the table rows whose {col} is empty."], {"quant": "sqlverb", "col": "col"}),
    (["How do I add a test for {func} with {testfw}?", "Write a {testfw} test for {func}.",
      "Using {testfw}, how can I test {func}?"], {"func": "func", "testfw": "testfw"}),
    (["How do I increase the timeout to {n} seconds in {client}?", "Set a {n} second timeout on {client}.",
      "In {client}, how can I raise the timeout to {n} seconds?"], {"n": "n", "client": "client"}),
    (["Where does {tool} keep its config file on {os}?", "On {os}, what's the location of the {tool} config file?",
      "Find the {tool} configuration file on {os}."], {"tool": "tool", "os": "os"}),
    (["How do I debounce a function in {fe}?", "Write a debounce helper for {fe}.", "In {fe}, how can I debounce a handler?"],
     {"fe": "fe"}),
]
SLOTS = {
    "os": ["Linux", "macOS", "Windows", "FreeBSD", "Ubuntu", "Fedora"],
    "fmt": ["YAML", "TOML", "CSV", "XML", "JSON"],
    "lang": ["Python", "Go", "Rust", "Java", "Ruby", "Kotlin", "C#", "TypeScript", "PHP"],
    "port": ["3000", "8443", "5000", "9090", "27017", "6380"],
    "func": ["load_config", "parseHeader", "build_index", "fetchOrders", "merge_maps", "computeTotals"],
    "file": ["notes.md", "setup.cfg", "main.rs", "index.html", "Makefile.inc", "app.vue"],
    "pkg": ["requests", "numpy", "flask", "httpx", "pydantic", "boto3"],
    "ver": ["2.28.1", "1.24.0", "3.0.2", "0.27.0", "2.5.3"],
    "n": ["5", "10", "15", "30", "45"],
    "flag": ["--force", "-n", "--dry-run", "-v", "--prune", "-r"],
    "cmd": ["git clean", "rsync", "docker system prune", "npm ci", "terraform plan", "tar"],
    "tool": ["nginx", "docker", "node", "terraform", "kubectl", "gradle"],
    "err": ["ModuleNotFoundError: No module named 'yaml'", "EADDRINUSE: address already in use",
            "fatal: refusing to merge unrelated histories", "SSL: CERTIFICATE_VERIFY_FAILED",
            "java.lang.NullPointerException", "segmentation fault (core dumped)", "ENOSPC: no space left on device",
            "permission denied (publickey)"],
    "place": ["the backup server", "my laptop", "the build machine", "an S3 bucket", "the staging host"],
    "dtype": ["a list", "a set", "a string", "a byte array", "a timestamp", "a date"],
    "sqlverb": ["delete", "count", "select", "update"],
    "col": ["email", "phone", "address", "nickname"],
    "testfw": ["pytest", "Jest", "JUnit", "RSpec", "Vitest"],
    "client": ["requests", "axios", "the Go http.Client", "OkHttp", "urllib3"],
    "fe": ["React", "Vue", "Svelte", "Angular", "plain JavaScript"],
}

COURTESY_BEFORE = ["Hey there! ", "Hi all, ", "Morning! Quick question: ", "Hello, sorry to ask, but ",
                   "Could anyone help? ", "I'm a bit stuck. ", "Newbie here. "]
COURTESY_AFTER = [" Thanks!", " Cheers.", " Thanks a ton in advance.", " Any pointers welcome.", " Appreciate it!",
                  " I'd be grateful for help."]
ABBREVIATIONS = {"configuration": "config", "config": "cfg", "directory": "dir", "function": "fn", "database": "db",
                 "version": "ver", "repository": "repo", "command": "cmd", "application": "app", "with": "w/",
                 "without": "w/o", "install": "inst", "installed": "inst'd", "environment": "env",
                 "JavaScript": "JS", "TypeScript": "TS", "Python": "py", "Kubernetes": "k8s", "seconds": "secs",
                 "minutes": "mins", "message": "msg", "package": "pkg", "please": "pls", "because": "bc",
                 "source": "src", "destination": "dest", "temporary": "tmp", "string": "str", "file": "file"}
SYNONYMS = {"How do I": "How would I", "list": "enumerate", "show": "display", "read": "load", "kill": "end",
            "remove": "get rid of", "check": "verify", "fix": "resolve", "rename": "change the name of",
            "increase": "bump", "keep": "store", "find": "locate", "write": "produce", "add": "create",
            "copy": "duplicate", "schedule": "set up", "stops": "halts", "parse": "process", "error": "failure"}
FORMS = [("How do I ", "I need to "), ("How do I ", "Is there a way to "), ("How can I ", "What's the best way to "),
         ("How do I ", "Could you show how to ")]


def typo(text: str) -> str:
    """Two keyboard slips in words of 4+ letters: a swap, a dropped or a doubled letter."""
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 4 and w.isalpha()]
    for i in rng.sample(idx, min(2, len(idx))):
        w = words[i]
        k = rng.randrange(1, len(w) - 1)
        op = rng.choice(["swap", "drop", "double"])
        words[i] = (w[:k] + w[k + 1] + w[k] + w[k + 2:] if op == "swap" else
                    w[:k] + w[k + 1:] if op == "drop" else w[:k] + w[k] + w[k:])
    return " ".join(words)


def surface(text: str) -> str:
    t = text.lower() if rng.random() < 0.5 else text
    return t.rstrip("?.!") + rng.choice(["", "??", "?!", " ?", "."])


def abbreviate(text: str) -> str:
    out = text
    for full, short in ABBREVIATIONS.items():
        out = out.replace(full, short)
    return out.replace("How do I", "how to") if out == text else out


def verbose(text: str) -> str:
    return rng.choice(COURTESY_BEFORE) + text + rng.choice(COURTESY_AFTER)


def form(text: str) -> str:
    for a, b in FORMS:
        if text.startswith(a):
            return b + text[len(a):].rstrip("?") + "?"
    return "Can you tell me: " + text[0].lower() + text[1:]


def synonym(text: str) -> str:
    out = text
    for a, b in rng.sample(list(SYNONYMS.items()), len(SYNONYMS)):
        if f" {a} " in f" {out} " or out.startswith(a):
            out = out.replace(a, b, 1)
    return out


def reorder(wordings: list, values: dict) -> str:
    return wordings[rng.randrange(1, len(wordings))].format(**values)


PARAPHRASES = {
    "paraphrase_reorder": lambda w, v, base: reorder(w, v),
    "paraphrase_surface": lambda w, v, base: surface(base),
    "paraphrase_typo": lambda w, v, base: typo(base),
    "paraphrase_abbreviation": lambda w, v, base: abbreviate(base),
    "paraphrase_verbosity": lambda w, v, base: verbose(base),
    "paraphrase_form": lambda w, v, base: form(base),
    "paraphrase_synonym": lambda w, v, base: synonym(base),
    "paraphrase_heavy": lambda w, v, base: verbose(synonym(typo(reorder(w, v)))),
}

SLOT_CATEGORY = {"os": "os_platform", "fmt": "language_framework", "lang": "language_framework", "fe": "language_framework",
                 "testfw": "language_framework", "client": "language_framework", "port": "numbers_versions",
                 "ver": "numbers_versions", "n": "numbers_versions", "func": "identifiers", "pkg": "identifiers",
                 "flag": "identifiers", "cmd": "identifiers", "tool": "identifiers", "file": "paths_extensions",
                 "err": "error_message", "col": "identifiers", "quant": "intent", "src": "identifiers",
                 "dst": "identifiers", "a": "identifiers", "b": "identifiers"}


def coding_pairs() -> list[dict]:
    out = []
    for wordings, slots in TASKS:
        for _ in range(2):
            values = {k: rng.choice(SLOTS[v]) for k, v in slots.items()}
            if "src" in values and values["src"] == values["dst"]:
                values["dst"] = next(p for p in SLOTS["place"] if p != values["src"])
            if "a" in values and values["a"] == values["b"]:
                values["b"] = next(p for p in SLOTS["dtype"] if p != values["a"])
            base = wordings[0].format(**values)
            for kind in rng.sample(list(PARAPHRASES), 4):
                para = PARAPHRASES[kind](wordings, values, base)
                if para != base:
                    out.append({"a": base, "b": para, "same_answer": True, "category": kind})
            # Hard negatives: one slot changed, in another wording of the same task half the time.
            for slot in rng.sample(list(slots), min(2, len(slots))):
                out.append(negative(wordings, slots, values, base, slot))
            if {"src", "dst"} <= set(slots) or {"a", "b"} <= set(slots):
                x, y = ("src", "dst") if "src" in slots else ("a", "b")
                swapped = dict(values, **{x: values[y], y: values[x]})
                out.append({"a": base, "b": rng.choice(wordings).format(**swapped), "same_answer": False,
                            "category": "direction_opposites"})
    return out + edited_negatives()


def negative(wordings: list, slots: dict, values: dict, base: str, slot: str) -> dict:
    changed = dict(values, **{slot: rng.choice([x for x in SLOTS[slots[slot]] if x != values[slot]])})
    wording = rng.choice(wordings) if rng.random() < 0.5 else wordings[0]
    return {"a": base, "b": wording.format(**changed), "same_answer": False,
            "category": SLOT_CATEGORY[slot]}


# Hard negatives written as a sentence and the one edit its category names.
EDITS = {
    "negation": [("How do I install {pkg} with its dependencies?", "How do I install {pkg} without its dependencies?"),
                 ("Why is my {tool} container restarting?", "Why is my {tool} container not restarting?"),
                 ("How do I make git track {file}?", "How do I make git stop tracking {file}?"),
                 ("Run {testfw} with coverage.", "Run {testfw} without coverage."),
                 ("How do I commit {file} with its pre-commit hooks?", "How do I commit {file} skipping the pre-commit hooks?")],
    "direction_opposites": [("How do I encrypt {file} with gpg?", "How do I decrypt {file} with gpg?"),
                            ("Upload {file} to the server with scp.", "Download {file} from the server with scp."),
                            ("How do I zip {file}?", "How do I unzip {file}?"),
                            ("Sort the {col} column from lowest to highest.", "Sort the {col} column from highest to lowest."),
                            ("How do I push tags to origin?", "How do I fetch tags from origin?"),
                            ("Export the {col} column to a spreadsheet.", "Import the {col} column from a spreadsheet."),
                            ("Rebase feature onto develop.", "Rebase develop onto feature."),
                            ("Cherry-pick the fix from release into main.", "Cherry-pick the fix from main into release.")],
    "quantifiers": [("Delete every branch that is merged.", "Delete one branch that is merged."),
                    ("Does any test in the suite fail?", "Does every test in the suite fail?"),
                    ("Print all lines that contain {col}.", "Print the first line that contains {col}."),
                    ("Return none of the rows with an empty {col}.", "Return all of the rows with an empty {col}."),
                    ("Restart each pod in the namespace.", "Restart a single pod in the namespace."),
                    ("Replace some of the tabs with spaces.", "Replace all of the tabs with spaces.")],
    "scope": [("Format this function with black.", "Format the whole repository with black."),
              ("Set the git email for this repo only.", "Set the git email for every repo on this machine."),
              ("Disable the lint rule on this line.", "Disable the lint rule for the whole project."),
              ("Clear the cache for the {col} key.", "Clear every key in the cache."),
              ("Install {pkg} for my user only.", "Install {pkg} for all users on the system."),
              ("Run the {testfw} tests in this file.", "Run the whole {testfw} test suite.")],
    "intent": [("Explain what {func} does.", "Refactor {func} to be shorter."),
               ("Review {func} for bugs.", "Write documentation for {func}."),
               ("Why is {func} slow?", "Make {func} faster."),
               ("What does {file} configure?", "Delete the settings in {file}."),
               ("Summarize the changes in the last commit.", "Undo the changes in the last commit."),
               ("Is {func} thread-safe?", "Make {func} thread-safe.")],
    "numbers_versions": [("Upgrade {pkg} to version {ver}.", "Upgrade {pkg} to version 4.0.0."),
                         ("Retry the request 3 times.", "Retry the request 30 times."),
                         ("Use Python 3.11 in the Dockerfile.", "Use Python 3.12 in the Dockerfile."),
                         ("Limit the upload size to 10 MB.", "Limit the upload size to 100 MB.")],
    "error_message": [("How do I fix 'ECONNREFUSED' from the database?", "How do I fix 'ETIMEDOUT' from the database?"),
                      ("What does HTTP 401 Unauthorized mean from the API?", "What does HTTP 403 Forbidden mean from the API?"),
                      ("Go build fails with: undefined: main.Run", "Go build fails with: main.Run redeclared in this block"),
                      ("Python raises KeyError: 'id' when reading the row", "Python raises IndexError: list index out of range when reading the row")],
    "os_platform": [("Install {tool} on Apple Silicon.", "Install {tool} on an Intel Mac."),
                    ("Build {tool} for ARM64.", "Build {tool} for x86_64."),
                    ("How do I set PATH in PowerShell?", "How do I set PATH in zsh?")],
    "paths_extensions": [("Load the settings from config/dev.yaml.", "Load the settings from config/prod.yaml."),
                         ("Convert {file} to a .pdf.", "Convert {file} to a .docx."),
                         ("Ignore the build/ folder in git.", "Ignore the dist/ folder in git.")],
    "language_framework": [("Debounce an input in {fe}.", "Debounce an input in Solid."),
                           ("Set up logging in {lang}.", "Set up logging in Elixir.")],
    "identifiers": [("What does {func}() throw?", "What does {func}Async() throw?"),
                    ("Mock {func} in my tests.", "Mock {func}_v2 in my tests.")],
}


def edited_negatives() -> list[dict]:
    out = []
    for category, edits in EDITS.items():
        for a, b in edits * 2:
            values = {k: rng.choice(v) for k, v in SLOTS.items()}
            out.append({"a": a.format(**values), "b": b.format(**values), "same_answer": False, "category": category})
    return out


# -- everyday (Quora-like) questions -------------------------------------------------------------
GENERAL = [
    (["What is the best way to learn {skill}?", "How can I learn {skill} quickly and well?", "How should I go about learning {skill}?"],
     {"skill": "skill"}),
    (["What is it like to live in {city}?", "How is life in {city}?", "What's living in {city} really like?"], {"city": "city"}),
    (["How do I become a {job}?", "What steps should I take to become a {job}?", "What does it take to become a {job}?"],
     {"job": "job"}),
    (["Why do cats {habit}?", "What makes cats {habit}?", "Why is it that cats {habit}?"], {"habit": "habit"}),
    (["How much does a {job} earn in {country}?", "What is the salary of a {job} in {country}?",
      "What do {job}s make in {country}?"], {"job": "job", "country": "country"}),
    (["Which is the best book about {topic}?", "What book on {topic} would you recommend most?",
      "What's the single best book on {topic}?"], {"topic": "topic"}),
    (["How can I stop {bad}?", "What is the best way to quit {bad}?", "How do I get myself to stop {bad}?"], {"bad": "bad"}),
]
GSLOTS = {"skill": ["guitar", "Spanish", "chess", "swimming", "calculus", "photography"],
          "city": ["Berlin", "Toronto", "Singapore", "Lisbon", "Nairobi", "Osaka"],
          "job": ["pilot", "nurse", "data analyst", "lawyer", "architect", "chef"],
          "habit": ["purr", "knead blankets", "sleep so much", "hate water", "bring gifts"],
          "country": ["Canada", "India", "Germany", "Brazil", "Australia"],
          "topic": ["stoicism", "World War I", "investing", "habits", "astronomy"],
          "bad": ["procrastinating", "smoking", "overthinking", "biting my nails", "checking my phone"]}
GENERAL_EDITS = [
    ("What do people in {city} think of {city2}?", "What do people in {city2} think of {city}?"),
    ("How can I make my {thing} more popular?", "How can I make a {thing} more popular?"),
    ("What was your first job?", "What is your current job?"),
    ("Who will win the next {event}?", "Who won the last {event}?"),
    ("Is it safe to travel to {city} alone?", "Is it safe to travel to {city} with kids?"),
    ("What happened to {brand}?", "What is happening at {brand}?"),
    ("How do I know if my {person} loves me?", "How do I know if my {person} hates me?"),
    ("What are the pros of living in {city}?", "What are the cons of living in {city}?"),
]
GEXTRA = {"city2": GSLOTS["city"], "thing": ["blog", "podcast", "YouTube channel", "bakery"],
          "event": ["World Cup", "Tour de France", "Super Bowl"], "brand": ["Nokia", "Kodak", "Yahoo", "BlackBerry"],
          "person": ["girlfriend", "boss", "cat", "teacher"]}


def general_pairs() -> list[dict]:
    out = []
    for wordings, slots in GENERAL:
        for _ in range(4):
            values = {k: rng.choice(GSLOTS[v]) for k, v in slots.items()}
            base = wordings[0].format(**values)
            para = rng.choice([lambda: reorder(wordings, values), lambda: surface(base), lambda: typo(base),
                               lambda: verbose(base)])()
            out.append({"a": base, "b": para, "duplicate": True})
            slot = rng.choice(list(slots))
            changed = dict(values, **{slot: rng.choice([x for x in GSLOTS[slots[slot]] if x != values[slot]])})
            out.append({"a": base, "b": rng.choice(wordings).format(**changed), "duplicate": False})
    for a, b in GENERAL_EDITS:
        for _ in range(2):
            values = {k: rng.choice(v) for k, v in {**GSLOTS, **GEXTRA}.items()}
            if values["city"] == values["city2"]:
                values["city2"] = next(c for c in GSLOTS["city"] if c != values["city"])
            out.append({"a": a.format(**values), "b": b.format(**values), "duplicate": False})
    return out


def write(name: str, rows: list[dict]) -> None:
    seen, unique = set(), []
    for r in rows:
        key = (r["a"], r["b"])
        if key not in seen and r["a"] != r["b"]:
            seen.add(key)
            unique.append(r)
    (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in unique))
    print(f"{name}: {len(unique)} pairs")


if __name__ == "__main__":
    write("cache-fresh-coding.jsonl", coding_pairs())
    write("cache-fresh-general.jsonl", general_pairs())
