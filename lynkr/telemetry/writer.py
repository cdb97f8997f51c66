"""The DuckDB telemetry writer: a queue fed by the event loop, drained in batches by one thread.

Each batch attaches the file, writes and detaches it (lynkr.storage.duckfile), and `lynkr report` opens
it read-only in between, retrying while a batch is being written.

The thread turns finished requests into rows (token estimates are computed here, never on the
request path); the batch is written by lynkr.storage.db_service: under `lynkr run`, by the one writer
process all workers share, so a server process never loads DuckDB.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import orjson

from lynkr.storage import db_service
from lynkr.storage.duckfile import attached, insert_json, release, transaction
from lynkr.kit.heap import trim
from lynkr.kit.tokens import count_planned, count_request, count_text, gathering, known_parts
from lynkr.telemetry.lake import lake_key, lake_settings, start as lake_start
from lynkr.telemetry.schema import REQUEST_COLUMNS, STAGE_EVENT_COLUMNS, ddl

__all__ = ["TelemetryWriter", "NullWriter", "lighten", "note_tokens", "rows_for", "token_counts", "write_file",
           "write_lake"]

log = logging.getLogger("lynkr.telemetry")

class NullWriter:
    plan_tokens = None          # no rows: no token plan to read while a request's parts are hot

    def submit(self, x) -> None:
        pass

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


# Finished requests may wait for their rows up to this many bytes of request bodies (~5× that in
# memory: the parsed request and its copies); normally under 10 MB wait (62 KB bodies, 870 req/s).
MAX_QUEUE_BYTES = 24 << 20


def _body_bytes(x) -> int:
    try:
        return int(x.headers.get("content-length") or 0) or 4096
    except (TypeError, ValueError):
        return 4096


# Rows are built from finished requests this often, or once this many are waiting (see _loop).
ROWS_INTERVAL_S = 0.05
ROWS_EVERY = 64


class TelemetryWriter:
    def __init__(self, path: str, *, flush_interval: float = 2.0, batch_size: int = 5000,
                 content: bool = False, worker: int = 0, max_queue: int = 2_000,
                 max_queue_bytes: int = MAX_QUEUE_BYTES, lake: dict | None = None):
        """`lake`: `telemetry.lake` of the pipeline; then the rows go to that DuckLake
        (lynkr.telemetry.lake) instead of the file `path`, which only places the spool."""
        Path(str(path)).parent.mkdir(parents=True, exist_ok=True)
        self.lake = lake_settings(lake, str(path)) if lake else None
        self.path = lake_key(self.lake) if self.lake else str(path)
        # A batch costs ~15 ms of the writer process whatever its size (attach, commit, the
        # checkpoint on detach): at 1 s and ~430 rows a worker that was ~35 µs a request, at 2 s ~17.
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.content = content
        self.worker = worker
        # Finished requests waiting for their rows. Each holds its parsed request (~300 KB for a
        # 62 KB Claude Code body), so memory is bounded when the rows stall (the writer process
        # slow to answer a token count): past `max_queue` requests or `max_queue_bytes` of their
        # bodies, requests are counted in `dropped` (lynkr_telemetry_rows_dropped_total) instead
        # of kept. A count alone let 2,000 62 KB requests wait: a worker at 621 MB in one soak.
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self._pending: deque = deque()
        # Body bytes queued and taken, each written by one thread only (submit: the event loop;
        # _take: this writer's thread), so their difference needs no lock.
        self._queued_bytes = 0
        self._taken_bytes = 0
        self._wake = threading.Event()
        self._stop = False
        self.dropped = 0
        self.written = 0
        self.pending_peak = 0
        self.spooled = 0               # rows in the lake's spool (the writer process's, all workers')
        self.lake_failures = 0         # lake commits that failed and spooled (or dropped) their batch
        self._flush_requests: list[threading.Event] = []
        self.on_rows: list = []        # callables(row, events) in the writer thread (metrics' token counters)
        self._lock = threading.Lock()
        if self.lake:
            lake_start(self.lake)
        else:
            db_service.call("telemetry.create", self.path)
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lynkr-telemetry-send")
        self._spool = tempfile.mkdtemp(prefix="lynkr-telemetry-")     # the batches on their way (_write)
        self._batches = 0
        self._thread = threading.Thread(target=self._loop, name="lynkr-telemetry", daemon=True)
        self._thread.start()

    # -- called on the event loop: cheap, never blocks -------------------------------------
    @staticmethod
    def plan_tokens(x) -> None:
        """Each exchange's Body calls this once its upstream body is joined (lynkr.body.Body.upstream)."""
        note_tokens(x)

    def submit(self, x) -> None:
        # A deque append and a length check: no lock, no wake-up per request. Waking the writer
        # for every row made it contend for the GIL once per request, which cost more CPU than
        # the proxying itself (a small passthrough request: ~500 µs → ~1,050 µs).
        size = _body_bytes(x)
        if (len(self._pending) >= self.max_queue
                or self._queued_bytes - self._taken_bytes + size > self.max_queue_bytes):
            self.dropped += 1
            return
        if not self.content:
            lighten(x)
        self._queued_bytes += size
        self._pending.append((x, size))
        if len(self._pending) == ROWS_EVERY:
            self._wake.set()

    @property
    def queued(self) -> int:
        """Finished requests waiting for the writer thread to make their rows."""
        return len(self._pending)

    # -- called from any thread ------------------------------------------------------------
    def flush(self, timeout: float | None = 10.0) -> None:
        ev = threading.Event()
        with self._lock:
            self._flush_requests.append(ev)
        self._wake.set()
        ev.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        if not self._thread.is_alive():
            return
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)

    # -- the writer thread -----------------------------------------------------------------
    def _loop(self) -> None:
        """Two paces. Rows are built every ROWS_INTERVAL_S (or ROWS_EVERY requests), which lets
        each finished Exchange go: one holds the parsed request, its copies and the upstream body
        (~250 KB for a 62 KB Claude Code request), and holding a second of them kept a worker
        ~150 MB above what it needs. The file is written every flush interval (or batch_size
        rows), by the sender thread: while a batch is being written, rows go on being built
        (waiting on the write here let ~200 finished requests, ~60 MB, pile up behind it)."""
        req_rows: list = []
        ev_rows: list = []
        last_write = last_retry = time.monotonic()
        sending: Future | None = None
        while True:
            busy = bool(self._pending or req_rows)
            self._wake.wait(ROWS_INTERVAL_S if busy else self.flush_interval)
            self._wake.clear()
            stop = self._stop
            with self._lock:
                waiters, self._flush_requests = self._flush_requests, []
            self._rows(self._take(), req_rows, ev_rows)
            now = time.monotonic()
            due = now - last_write >= self.flush_interval or len(req_rows) >= self.batch_size
            idle = sending is None or sending.done()
            # A write slower than the rows come (the file locked by a report, a slow disk): past a
            # batch, wait for it, so finished requests queue up to max_queue and are then counted
            # as dropped, rather than rows growing without bound.
            full = len(req_rows) >= self.batch_size
            if req_rows and ((due and (idle or full)) or stop or waiters):
                if not idle:
                    sending.result()          # one batch in flight, written in order
                sending = self._sender.submit(self._write, req_rows, ev_rows)
                req_rows, ev_rows = [], []
                last_write = now
            elif not req_rows:
                last_write = now
                # The lake's spool is retried on traffic; with none, by an empty batch now and then.
                if self.spooled and idle and now - last_retry >= self.flush_interval:
                    sending = self._sender.submit(self._write, [], [])
                    last_retry = now
            if waiters or stop:
                if sending is not None:
                    sending.result()
                for w in waiters:
                    w.set()
            if stop:
                self._sender.shutdown(wait=True)
                if not self.lake:       # the writer process keeps a lake (and its spool) for every worker
                    db_service.call("telemetry.release", self.path)
                shutil.rmtree(self._spool, ignore_errors=True)
                return

    def _take(self) -> list:
        out = []
        taken = 0
        pop = self._pending.popleft
        try:
            while True:
                x, size = pop()
                out.append(x)
                taken += size
        except IndexError:
            self._taken_bytes += taken
            self.pending_peak = max(self.pending_peak, len(out))
            return out

    def _rows(self, items: list, req_rows: list, ev_rows: list) -> None:
        # Each request's parts counted once: the gathering pass keeps the counts it completed (all
        # but the new texts' parts) in the memo the row then reads (a 62 KB body's ~25 parts were
        # serialised, hashed and looked up twice: ~250 µs of this thread's GIL time a request).
        memos = [{} for _ in items]
        if items and db_service.remote():
            # New texts are counted by the writer process: one trip for the batch, not one per request.
            with gathering():
                for x, memo in zip(items, memos):
                    try:
                        token_counts(x, memo)
                    except Exception:
                        pass            # rows_for below reports it
        for x, memo in zip(items, memos):
            try:
                r, evs = rows_for(x, content=self.content, worker=self.worker, memo=memo)
            except Exception:
                log.exception("telemetry row failed")
                self.dropped += 1       # a request without its row is counted, never silent
                continue
            req_rows.append(r)
            ev_rows.extend(evs)
            for cb in self.on_rows:
                try:
                    cb(r, evs)
                except Exception:
                    log.exception("telemetry on_rows hook failed")

    def _write(self, req_rows: list, ev_rows: list) -> None:
        """The sender thread: one batch to the file, then the memory its rows took back to the system.

        The rows go to the writer process as two JSON files DuckDB reads itself (read_json), not
        inside the request frame: a frame of rows was parsed back into dicts and turned into
        columns in Python there, ~35 µs a 62 KB request's rows of its ~150."""
        self._batches += 1
        files = {}
        try:
            if req_rows:
                files = spool(os.path.join(self._spool, f"{os.getpid()}-{self._batches}"), req_rows, ev_rows)
            if self.lake:
                self._to_lake(files, len(req_rows))
            else:
                db_service.call("telemetry.write", self.path, {"files": files})
                self.written += len(req_rows)
        except Exception:
            log.exception("telemetry: cannot write %s; %d rows lost", self.path, len(req_rows))
            self.dropped += len(req_rows)
        finally:
            for f in files.values():
                _unlink(f)
        trim()

    def _to_lake(self, files: dict, rows: int) -> None:
        got = db_service.call("telemetry.lake.write", self.path, {"files": files or None, "rows": rows, "lake": self.lake})
        self.written += got["written"]
        self.dropped += got["dropped"]
        self.spooled = got["spooled"]
        self.lake_failures = got["failures"]


# -- the file's operations (lynkr.storage.db_service: in the writer process, or in this one) -------------

ALIAS = "tele"


def write_file(path: str, req_rows: list[dict], ev_rows: list[dict]) -> None:
    """Rows written to the telemetry file `path` from this process, through the writer's own insert
    path (the file is created when missing): for tools and tests that build a file from known rows."""
    files = spool(f"{path}.rows", req_rows, ev_rows)
    try:
        _create(path)
        _write_rows(path, {"files": files})
    finally:
        _release(path)
        for f in files.values():
            _unlink(f)


def write_lake(lake: dict, req_rows: list[dict], ev_rows: list[dict], *, spool_dir: str) -> None:
    """Rows written to the DuckLake `lake` (`telemetry.lake`) from this process, through the writer's
    own path: for tools and tests that fill a lake from known rows."""
    settings = lake_settings(lake, os.path.join(spool_dir, "telemetry.duckdb"))
    lake_start(settings)
    files = spool(os.path.join(spool_dir, "rows"), req_rows, ev_rows)
    try:
        got = db_service.call("telemetry.lake.write", lake_key(settings),
                              {"files": files, "rows": len(req_rows), "lake": settings})
        if got["written"] != len(req_rows):
            raise RuntimeError(f"the lake took {got['written']} of {len(req_rows)} rows")
    finally:
        for f in files.values():
            _unlink(f)


@db_service.operation("telemetry.create")
def _create(path: str, _payload=None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with attached(path, ALIAS) as con:
        for stmt in ddl(ALIAS):
            con.execute(stmt)


def spool(stem: str, req_rows: list[dict], ev_rows: list[dict]) -> dict[str, str]:
    """A batch as the two files `telemetry.write` reads: JSON arrays of row objects."""
    files = {"requests": stem + ".requests.json", "events": stem + ".events.json"}
    for name, rows in (("requests", req_rows), ("events", ev_rows)):
        with open(files[name], "wb") as f:
            f.write(orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY, default=str))
    return files


@db_service.operation("telemetry.write")
def _write_rows(path: str, payload: dict) -> None:
    """One batch in one transaction: `{"files": {"requests": …, "events": …}}` (spool())."""
    files = payload["files"]
    with transaction(path, ALIAS) as con:
        insert_json(con, f"{ALIAS}.requests", REQUEST_COLUMNS, files["requests"])
        insert_json(con, f"{ALIAS}.stage_events", STAGE_EVENT_COLUMNS, files["events"])


@db_service.operation("telemetry.release")
def _release(path: str, _payload=None) -> None:
    release(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def note_tokens(x) -> None:
    """Read now the token counts `lighten` needs, where the upstream body has just been joined from
    the parts' JSON (lynkr.body.Body.upstream): those parts and their JSON are in the CPU's caches
    then. At the end of the request, after the upstream round trip and other requests' work, the
    same lookups ran on a cold tree (~4 % of the event loop on a 62 KB miss). `lighten` keeps
    them while the requests are still the ones read here (a fallback may change them)."""
    json = x.body.known
    if json is not None:
        x.body.tokens = (_known_tokens(x, json), _client_request(x), x.request)


def _client_request(x) -> dict:
    return x.baseline if x.baseline is not None else x.request


def _known_tokens(x, json: dict) -> tuple:
    """known_parts() of the client's request and of the one sent upstream (None when none was)."""
    seen: dict = {}
    client = known_parts(_client_request(x), json, seen)
    return client, (known_parts(x.request, json, seen) if x.upstream_request is not None else None)


def _read_for(tokens, x) -> bool:
    """Whether the token plan `tokens` was read from the very requests `x` holds now."""
    return tokens is not None and tokens[1] is _client_request(x) and tokens[2] is x.request


def lighten(x):
    """`x` without its request: on the event loop, once the response is out, what its row needs
    from the client's and the upstream request is read (the tokens of the parts counted before,
    one lookup a part — or already read by `note_tokens` while they were hot; the models) and they
    are let go. Held until the telemetry thread took them and freed there, cold, a 62 KB Claude
    Code request's tree of objects cost that thread ~120 µs; freed here, with the lookups, the
    request costs ~150 µs less CPU in all (docs/performance.md). The parts not counted yet stay,
    for the telemetry thread to count (tiktoken never runs on the loop). Without the parts' JSON (no
    stage serialised the request and lynkr.body did not read it from the client's bytes: a small
    passthrough request) nothing is known here and `x` is left whole."""
    body = x.body
    json = body.release()
    if json is None:
        return x
    # The plan, no longer tied to the requests it read (they are let go below).
    tokens = body.tokens
    body.tokens = (tokens[0] if _read_for(tokens, x) else _known_tokens(x, json), None, None)
    body.models = (x.original.get("model") if isinstance(x.original, dict) else None, _called_model(x))
    x.request = x.baseline = x.original = {}
    x.upstream_request = None
    return x


def rows_for(x, *, content: bool = False, worker: int = 0, memo: dict | None = None) -> tuple[dict, list[dict]]:
    """The `requests` row and `stage_events` rows for a finished Exchange (writer thread)."""
    resp = x.response
    v = x.vars
    ts = dt.datetime.fromtimestamp(x.ts, dt.timezone.utc).replace(tzinfo=None)
    pipeline = x.pipeline
    usage = (resp.usage if resp is not None else None) or {}
    err = resp.error if resp is not None else None
    cache = v.get("cache")
    memo = {} if memo is None else memo     # id(part) -> (part, tokens), shared by the two counts below
    # The JSON of the request's parts (lynkr.body): counted parts are found by it without
    # serialising them again; let go once counted, so it lives no longer than the request.
    tokens_client, tokens_upstream, measured = token_counts(x, memo)
    x.body.release()
    models = x.body.models
    row = {
        "id": x.id,
        "ts": ts,
        "pipeline": pipeline.name if pipeline is not None else v.get("pipeline"),
        "pipeline_hash": pipeline.hash if pipeline is not None else v.get("pipeline_hash"),
        "client": x.client,
        "user_agent": x.headers.get("user-agent"),
        "session": x.session,
        "key": v.get("key"),
        "team": v.get("team"),
        "upstream_key": v.get("upstream_key"),
        "requested_model": (models[0] if models is not None else
                            (x.original or {}).get("model") if isinstance(x.original, dict) else None),
        "provider": x.route.provider if x.route else None,
        "model": models[1] if models is not None else _called_model(x),
        "tier": v.get("tier"),
        "score": v.get("score"),
        "cache": cache,
        "fallback": v.get("fallback"),
        "stream": x.stream,
        "status": (resp.status if resp is not None else None),
        "error": (f"{err.status} {err.type}: {err.message}"[:500] if err is not None else None),
        "latency_ms": v.get("latency_ms"),
        "ttfb_ms": v.get("ttfb_ms"),
        "upstream_ms": v.get("upstream_ms"),
        "overhead_ms": v.get("overhead_ms"),
        "tokens_client": tokens_client,
        # What went upstream, measured in the canonical form like the baseline (the provider's own
        # wire format would count differently); 0 when no upstream was called (cache hits).
        "tokens_upstream": tokens_upstream,
        "usage_input": usage.get("input_tokens"),
        "usage_output": usage.get("output_tokens"),
        "usage_cache_read": usage.get("cache_read_input_tokens"),
        "usage_cache_write": usage.get("cache_creation_input_tokens"),
        "usage_cache_write_1h": _one_hour_writes(usage),
        "usage_detail": _unmapped_usage(usage),
        "worker": worker,
        "prompt": orjson.dumps(x.original).decode() if content else None,
        "response_text": (orjson.dumps(resp.final or resp.message).decode()
                          if content and resp is not None and (resp.final or resp.message) else None),
    }
    evs = []
    for ev, counted in zip(x.events, measured):
        before, after = counted or (ev.tokens_before, ev.tokens_after)
        evs.append({
            "request_id": x.id, "ts": ts, "pipeline": row["pipeline"], "pipeline_hash": row["pipeline_hash"],
            "stage_id": ev.stage_id, "uses": ev.uses, "phase": ev.phase, "outcome": ev.outcome,
            "duration_us": ev.duration_us, "tokens_before": before, "tokens_after": after,
            "detail": _detail(ev, content),
        })
    return row, evs


_CACHE_CREATION = frozenset({"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"})


def _one_hour_writes(usage: dict) -> int | None:
    cc = usage.get("cache_creation")
    return int(cc.get("ephemeral_1h_input_tokens") or 0) if isinstance(cc, dict) else None


def _unmapped_usage(usage: dict) -> str | None:
    """Cache fields a provider reported that no column holds, raw (a new ttl, a new counter)."""
    out = dict(usage.get("unmapped") or {}) if isinstance(usage.get("unmapped"), dict) else {}
    cc = usage.get("cache_creation")
    if isinstance(cc, dict):
        out.update({f"cache_creation.{k}": v for k, v in cc.items() if k not in _CACHE_CREATION})
    return orjson.dumps(out).decode() if out else None


def _detail(ev, content: bool) -> str | None:
    detail = ev.detail
    if detail and ev.quotes and not content:
        detail = {k: v for k, v in detail.items() if k not in ev.quotes}
    return orjson.dumps(detail, default=str).decode() if detail else None


def token_counts(x, memo: dict | None = None) -> tuple[int, int, list]:
    """The estimates a row needs: what the client sent, what went upstream (0 when nothing did),
    and each event's (before, after) from its `measure` (None where the stage gave numbers).
    `memo` (id -> count) is shared by the passes over one batch (see count_request)."""
    memo = {} if memo is None else memo
    json = x.body.known
    # lighten() or note_tokens() read the requests; note_tokens() read them if they are named, and
    # its plan holds only while they are still the requests `x` has (a fallback may replace them).
    tokens = x.body.tokens
    plan = None
    if tokens is not None and (tokens[1] is None or _read_for(tokens, x)):
        plan = tokens[0]
    if plan is not None:
        client = count_planned(plan[0], memo)
        upstream = count_planned(plan[1], memo) if plan[1] is not None else 0
    else:
        client = count_request(_client_request(x), memo, json)
        upstream = count_request(x.request, memo, json) if x.upstream_request is not None else 0
    measured = [(count_text(ev.measure[0]), count_text(ev.measure[1]))
                if ev.measure is not None and ev.tokens_before is None else None for ev in x.events]
    return client, upstream, measured


def _called_model(x) -> str | None:
    """The model the upstream was asked for: a `provider:*` route keeps the client's model."""
    if x.route is None:
        return None
    if x.route.model == "*":
        sent = x.upstream_request if isinstance(x.upstream_request, dict) else x.request
        return sent.get("model") or x.route.model
    return x.route.model


def default_worker_id() -> int:
    return int(os.environ.get("LYNKR_WORKER", "0"))
