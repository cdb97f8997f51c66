"""The cache store's write batches: coalesced per id, and the file ends as the writes in order would leave it."""
from lynkr.storage.cache_store import DELETE, INSERT, CacheStore, grouped

MSG = {"content": [{"type": "text", "text": "ok"}]}


def _put(st, i, scope, **kw):
    st.put(id=f"e{i}", kind="exact", stage="exact", scope=scope, message=MSG, created=1.0, expires=9e9, **kw)


def test_an_insert_and_eviction_per_miss_end_as_in_order(tmp_path):
    st = CacheStore(str(tmp_path / "c.duckdb"))
    for i in range(50):
        _put(st, i, f"a{i}")
    st.flush()
    # A full cache: each miss stores its answer and evicts the oldest, all queued in one batch.
    for i in range(50, 120):
        _put(st, i, f"a{i}")
        st.delete([f"e{i - 50}"])
    st.delete(["e119"])             # stored, then evicted within the same batch
    _put(st, 7, "back")             # evicted, then stored again
    st.put(id="v", kind="semantic", stage="cache", scope="sc", message=MSG, created=1.0, expires=9e9,
           text="q", vector=[0.25] * 4)
    st.flush()
    rows = {r["id"]: r["scope"] for r in st.load("exact", "exact")}
    assert set(rows) == {f"e{i}" for i in range(70, 119)} | {"e7"} and st.errors == 0
    assert rows["e7"] == "back" and rows["e80"] == "a80"
    sem = st.load("semantic", "cache")
    assert sem[0]["vector"] == [0.25] * 4 and sem[0]["text"] == "q" and sem[0]["message"] == MSG
    st.release()


def test_purge_keeps_its_place_between_runs(tmp_path):
    st = CacheStore(str(tmp_path / "c.duckdb"))
    st.put(id="old", kind="exact", stage="exact", scope="o", message=MSG, created=1.0, expires=5.0)
    st.purge_expired(now=10.0)      # removes "old" …
    st.put(id="new", kind="exact", stage="exact", scope="n", message=MSG, created=1.0, expires=6.0)
    st.flush()                      # … but not "new", queued after the purge
    assert [r["id"] for r in st.load("exact", "exact", now=0.0)] == ["new"]
    st.release()


def test_grouping_is_one_delete_and_one_insert_per_run():
    row = lambda i: [f"e{i}", "exact", "s", "k", None, None, "{}", 1.0, 2.0]      # noqa: E731
    batch = []
    for i in range(10):
        batch += [(INSERT, row(i)), (DELETE, [[f"x{i}"]])]
    stmts = list(grouped(batch))
    assert len(stmts) == 2
    assert stmts[0] == (DELETE, [[f"x{i}" for i in range(10)]])
    assert stmts[1][1][0] == [f"e{i}" for i in range(10)]


def test_a_flush_does_not_wait_out_the_busy_interval(tmp_path, monkeypatch):
    import lynkr.storage.cache_store as store
    monkeypatch.setattr(store, "WRITE_INTERVAL", 3600.0)
    st = CacheStore(str(tmp_path / "c.duckdb"))
    for i in range(40):             # a big batch: the next write counts as "under load"
        _put(st, i, f"a{i}")
    st.flush()
    _put(st, 99, "late")            # queued behind an hour's wait …
    st.flush(timeout=60)            # … which a flush (shutdown, reload) cuts short
    assert "e99" in {r["id"] for r in st.load("exact", "exact")}
    st.release()
