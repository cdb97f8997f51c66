"""measure's shortcuts change nothing: vocabularies try only the words that can begin a match, the
code and name patterns skip texts without the characters every match holds, and the text
dimensions remembered per ask are those computed afresh."""
import json

import pytest

from lynkr.routing import signals
from lynkr.routing.text import Conversation
from lynkr.routing.score import DEFAULT_WEIGHTS
from tests.conftest import EVAL

ASKS = [
    "", "ok", "(request 17)", "Fix the negative stock bug in inventory.py: two orders race. Add a test.",
    "Re-architect the billing service; prove the ledger stays consistent under failover.",
    "what's the 500 error about? a 503 keeps coming back", "Update .gitignore and the README", "we need atomicity",
    "Ünïcode wörds: résumé naïve — déploiement de la base", "Move the jobs from cron to Celery, then add retries.",
    "is it thread-safe? walk me through the interleavings", "x" * 7000 + " refactor the whole codebase",
    "Why does `getUser()` in src/api/user_service.py return None when cfg = {}; see /var/log/app.log",
    "SELECT * FROM orders;\nUPDATE stock SET n = n - 1\n$ pytest -x\n>>> parseInt(x)", "match ^\\d{3}-\\d{4}$ or a[i]->b",
    "the non-security fix in auth.py: Store.remove and re-architecting re-architect rearchitect; redesign, redesigns",
    "Design the design: audit, audits, auditing. Then refactor the refactoring and port the ports; what port?",
    "It's O(n log n) because of the sort, due to the caused by chain; from cron to celery, from a to b",
    "we need we need i want to know; 503 errors, a 500, 404 error",
]


def _vocabularies():
    out = [v for v in vars(signals).values() if isinstance(v, signals.Vocabulary)]
    out += [p for _, _, p in signals.ACTION_CLASSES] + list(signals.RISK_DOMAINS.values())
    return out


def _needing():
    return [v for v in vars(signals).values() if isinstance(v, signals._Needing)]


def _asks():
    asks = list(ASKS)
    if EVAL.is_dir():
        for line in (EVAL / "routing-dev.jsonl").read_text().splitlines():
            asks.append(json.loads(line)["prompt"])
    return asks


@pytest.mark.parametrize("conv", [Conversation(human_turns=3, messages=9, tool_loop_depth=4, tool_errors=1, tools=12),
                                  Conversation()])
def test_measure_is_the_same_with_and_without_shortcuts(monkeypatch, conv):
    fast = [signals.measure(a, conv, DEFAULT_WEIGHTS) for a in _asks()]
    again = [signals.measure(a, conv, DEFAULT_WEIGHTS) for a in _asks()]          # remembered
    for v in _vocabularies():
        monkeypatch.setattr(v, "heads", None)
    for v in _needing():
        monkeypatch.setattr(v, "needles", ("",))                                  # "" is in every text
    monkeypatch.setattr(signals, "_by_ask", {})
    monkeypatch.setattr(signals, "_MEMO_CHARS", 0)                               # nothing remembered
    slow = [signals.measure(a, conv, DEFAULT_WEIGHTS) for a in _asks()]
    assert fast == again == slow


def test_heads_cover_the_vocabulary():
    v = signals.words(r"design(?:s|ing)?", r"re-?architect\w*", r"(?:we|i) (?:need|want)", r"(?:5\d\d|4\d\d) errors?")
    assert v.heads == {"des", "re", "we", "i", "5", "4"}
    assert v.search("i need it") and v.search("a 5xx: 503 errors") and v.search("re-architecting")
    assert v.search("nothing here") is None and v.findall("no") == [] and list(v.finditer("")) == []
    # Only words that can begin a match are tried, and the matches are those of a scan.
    text = "we need a redesign: re-architect, i need 503 errors; designs, designing. webs i"
    assert v.findall(text) == v.rx.findall(text) == ["we need", "re-architect", "i need", "503 errors", "designs",
                                                     "designing"]
    assert v.search(text).span() == v.rx.search(text).span() and v.match(text).group() == "we need"
    assert v.match("a we need") is None and v.rx.match("a we need") is None
    # An alternative that can begin otherwise (a class, a dot) turns the shortcut off.
    assert signals.words(r"[a-z]+ly", r"design").heads is None
    assert signals.words(r"\.gitignore").heads is None


def test_stripped_texts_are_remembered_within_a_bound(monkeypatch):
    from lynkr.kit import harness
    from lynkr.kit.cache import remembered, text_size
    monkeypatch.setattr(harness, "_stripped", remembered(harness._stripped.fn, max_size=1000, size=text_size))
    for i in range(50):
        t = f"<system-reminder>note {i}</system-reminder> fix bug {i}"
        assert harness.strip_harness(t) == harness.strip_harness(t) == f"fix bug {i}"
    assert harness._stripped.table.size <= 1000 and len(harness._stripped.table) < 50
