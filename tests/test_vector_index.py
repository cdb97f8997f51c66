"""The semantic cache's vector index: bounded per scope and overall, rows reused in place."""
import numpy as np

from lynkr.cache.index import Entry, VectorIndex


def _vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return v / np.linalg.norm(v)


def _entry(i: int, scope: str = "s", text: str | None = None) -> Entry:
    return Entry(id=str(i), scope=scope, text=text or f"q{i}", message={"i": i}, created=float(i), expires=1e12)


def test_a_full_scope_evicts_its_oldest_and_reuses_the_row():
    ix = VectorIndex(8, max_entries=100, max_per_scope=5)
    for i in range(5):
        assert ix.add(_entry(i), _vec(i)) == []
    rows = ix.rows("s")
    evicted = ix.add(_entry(5), _vec(5))
    assert [e.id for e in evicted] == ["0"]
    assert ix.rows("s") == rows == 5          # no new row: the freed one
    assert ix.search("s", _vec(0), threshold=0.99) == []
    assert [e.id for _s, e in ix.search("s", _vec(5), threshold=0.99)] == ["5"]
    assert len(ix) == 5


def test_the_same_question_replaces_its_older_answer():
    ix = VectorIndex(8)
    ix.add(_entry(1, text="same"), _vec(1))
    evicted = ix.add(_entry(2, text="same"), _vec(1))
    assert [e.id for e in evicted] == ["1"] and len(ix) == 1
    assert [e.id for _s, e in ix.search("s", _vec(1), threshold=0.9)] == ["2"]


def test_the_overall_bound_evicts_the_oldest_across_scopes():
    ix = VectorIndex(8, max_entries=10, max_per_scope=10)
    for i in range(11):
        ix.add(_entry(i, scope=f"s{i % 2}"), _vec(i))
    assert len(ix) == 9                              # a tenth of the bound at once, oldest first
    ids = {e.id for e, _vec in ix.entries()}
    assert "0" not in ids and "10" in ids


def test_search_ranks_and_skips_expired_and_freed_rows():
    ix = VectorIndex(8, max_per_scope=3)
    base = _vec(0)
    near = base + 0.05 * _vec(1)
    ix.add(_entry(0), base)
    ix.add(Entry(id="old", scope="s", text="old", message={}, created=1.0, expires=5.0), near / np.linalg.norm(near))
    got = ix.search("s", base, threshold=0.5, now=10.0)
    assert [e.id for _s, e in got] == ["0"]
    assert len(ix.expire(now=10.0)) == 1 and len(ix) == 1
    ix.add(_entry(3), _vec(3))                      # goes into the freed row
    assert ix.search("s", -base, threshold=-2.0, now=10.0)[0][1].id in {"0", "3"}
    assert all(e is not None for _s, e in ix.search("s", base, threshold=-2.0, now=10.0))


def test_entries_without_a_vector_wait_under_their_key_until_handed_over():
    """An answer stored unembedded is not searchable and `holds` says no lookup could hit; it is
    handed over once for its (scope, key), expired ones dropped, and the waiting list is bounded."""
    ix = VectorIndex(8, max_entries=3)
    e = Entry(id="w", scope="s", text="q", message={}, created=1.0, expires=1e12, key="k")
    assert ix.add(e, None) == []
    assert not ix.holds("s", "k") and ix.search("s", _vec(1), threshold=-1) == []
    assert ix.waiting("s", "other") == []
    assert [x.id for x in ix.waiting("s", "k")] == ["w"] and ix.waiting("s", "k") == []
    ix.add(e, _vec(1))
    assert ix.holds("s", "k") and not ix.holds("s", "other")
    old = Entry(id="old", scope="s", text="q2", message={}, created=1.0, expires=5.0, key="k2")
    ix.add(old, None)
    assert ix.waiting("s", "k2", now=10.0) == []
    evicted = []
    for i in range(5):
        evicted += ix.add(Entry(id=f"n{i}", scope="s", text=f"n{i}", message={}, created=2.0, expires=1e12,
                                key=f"key{i}"), None)
    assert [x.id for x in evicted] == ["n0", "n1"]


def test_sweep_expires_on_every_nth_call_only_however_full_the_index_is():
    """Stores call sweep() each time; a full pass over the index runs once per `every` calls, also
    when the index sits at its bound (its size no longer changes)."""
    ix = VectorIndex(8, max_entries=4, max_per_scope=4)
    for i in range(4):
        ix.add(Entry(id=str(i), scope="s", text=f"q{i}", message={}, created=0.0, expires=5.0 if i == 0 else 1e12),
               _vec(i))
    swept = [ix.sweep(now=10.0, every=3) for _ in range(6)]
    assert [len(g) for g in swept] == [0, 0, 1, 0, 0, 0]
    assert len(ix) == 3
