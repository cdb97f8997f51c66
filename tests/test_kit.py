"""The stage kit: the bounded cache, per-session state, the event a stage is handed, option errors."""
import threading
from pathlib import Path

import pytest

from lynkr.config import load_config
from lynkr.engine import build_pipeline
from lynkr.errors import ConfigError
from lynkr.exchange import Exchange
from lynkr.kit.cache import Bounded, remembered, text_size
from lynkr.kit.session import Sessions, session_key

H = Path(__file__).parent / "helpers" / "engine_stages.py"


def test_bounded_by_entries_keeps_the_recent_and_forgets_the_old():
    b = Bounded(max_entries=100)
    for i in range(1000):
        b.put(i, i * 2)
        assert b.get(i) == i * 2
    assert len(b) <= 100 and b.get(999) == 1998 and b.get(0) is None


def test_bounded_by_size_counts_what_entries_declare():
    b = Bounded(max_size=1000)
    for i in range(100):
        b.put(f"t{i}", "x" * 50, 50)
    assert sum(len(v) for _k, v in b.items()) <= 1000 and b.get("t99") == "x" * 50


def test_a_hit_in_the_older_generation_survives_the_next_swap():
    b = Bounded(max_entries=10)
    b.put("hot", 1)
    for i in range(4):
        b.put(i, i)                 # the newer half fills: "hot" is now in the older one
    for i in range(4, 40):
        assert b.get("hot") == 1    # each hit keeps it current
        b.put(i, i)
    assert b.get("hot") == 1 and b.get(5) is None


def test_lru_evicts_the_least_recently_used_and_says_which():
    b = Bounded(max_entries=3, lru=True)
    for k in "abc":
        b.put(k, k.upper())
    assert b.get("a") == "A"        # a is now the most recent
    assert b.evicting_put("d", "D") == ["b"]
    assert [k for k, _ in b.items()] == ["c", "a", "d"] and "b" not in b


def test_lru_by_size_never_drops_the_entry_just_stored():
    b = Bounded(max_size=100, lru=True)
    b.put("small", "s", 10)
    assert b.evicting_put("huge", "h", 500) == ["small"] and b.get("huge") == "h" and b.size == 500


def test_lru_is_safe_to_share_with_threads():
    b = Bounded(max_entries=50, lru=True)

    def work(n):
        for i in range(2000):
            b.put((n, i % 80), i)
            b.get((n, (i * 7) % 80))
    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(b) == 50 and len(b.items()) == 50


def test_remembered_computes_once_per_text_within_its_bound():
    calls = []
    strip = remembered(lambda t: calls.append(t) or t.strip(), max_size=2000, size=text_size)
    assert strip("  a ") == strip("  a ") == "a" and calls == ["  a "]
    for i in range(100):
        strip(f"text {i}")
    assert strip.table.size <= 2000 and len(strip.table) < 100


def test_remembered_keys_several_arguments_by_their_tuple():
    @remembered(max_entries=16)
    def add(a, b=0):
        return a + b
    assert add(1, 2) == 3 and add(1) == 1 and len(add.table) == 2
    add.cache_clear()
    assert len(add.table) == 0


def test_sessions_are_bounded_and_made_on_first_use():
    s = Sessions(3, factory=set)
    for i in range(5):
        s.of(f"s{i}").add(i)
    assert len(s) == 3 and s.get("s0") is None and s.get("s4") == {4}
    s.get("s2")                         # active again: s3 is now the oldest
    s.of("s5")
    assert "s3" not in s and "s2" in s


def test_session_key_without_a_header_is_stable_across_turns():
    first = {"role": "user", "content": [{"type": "text", "text": "fix the bug"}]}
    one = Exchange.new("anthropic", {"messages": [first]})
    two = Exchange.new("anthropic", {"messages": [first, {"role": "assistant", "content": []}]})
    assert session_key(one) == session_key(two) != session_key(Exchange.new("anthropic", {"messages": []}))
    assert session_key(Exchange.new("anthropic", {"messages": []}, session="abc")) == "abc"


async def test_a_stage_is_handed_its_own_event_in_run_and_after(write_pipeline):
    text = f'version: 1\nstages:\n  - {{id: a, uses: "{H}:Notes"}}\n  - {{id: b, uses: "{H}:Notes"}}\n' \
           f'  - {{id: ans, uses: "{H}:Answer"}}\n'
    p = build_pipeline(load_config(write_pipeline(text), {}))
    x = Exchange.new("anthropic", {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    await p.handle(x)
    await p.finish(x)
    runs = [e for e in x.events if e.phase == "run" and e.stage_id in ("a", "b")]
    assert [e.detail for e in runs] == [{"ran": "a", "after": "a"}, {"ran": "b", "after": "b"}]
    assert x.stage_event is None


def test_an_option_error_names_the_file_line_and_option(write_pipeline):
    text = f'version: 1\nstages:\n  - {{id: ans, uses: "{H}:Answer"}}\n' \
           f'  - id: n\n    uses: "{H}:Notes"\n    with:\n      limit: 0\n'
    path = write_pipeline(text)
    with pytest.raises(ConfigError) as e:
        build_pipeline(load_config(path, {}))
    assert str(e.value).startswith(f"{path}:7: stages[1].with.limit: limit must be at least 1")


def test_a_target_option_naming_no_provider_says_which_exist(write_pipeline):
    text = ('version: 1\nproviders:\n  up: {kind: anthropic, base_url: "http://127.0.0.1:9"}\nstages:\n'
            '  - {id: call, uses: provider_call, with: {to: "upp:claude"}}\n')
    path = write_pipeline(text)
    with pytest.raises(ConfigError) as e:
        build_pipeline(load_config(path, {}))
    assert "stages[0].with.to: unknown provider 'upp'" in str(e.value) and "did you mean 'up'" in str(e.value)
