"""The counters behind client-key limits, exact and in one place for the host.

    admit({"now": t, "scopes": [["key", "alice", {"rpm": 60, ...}], ["team", "payments", {...}]]})
        -> None (admitted: counted in rpm and in flight) or a refusal dict
    release({"now": t, "scopes": [["key", "alice"], ["team", "payments"]], "tokens": n, "usd": d})

Where the counters live, and what a check costs:
- one process serves requests (`lynkr run` with one worker, which calls `serve_here()`; tests and
  library use without a writer process): in that process. `admit` and `release` are a dict lookup
  and a few comparisons under a lock, on the event loop, with no await: a client's next request is
  read only after the release of its previous one, whatever the client.
- `--workers N`: in the writer process (lynkr.storage.db_service), so the N workers share one set
  of counters and 4 workers cannot admit 4x a key's rpm. Each worker reaches it over its own
  channel from the event loop (`admit_async`: one frame each way; `release_soon`: one frame, no
  answer awaited). A non-streamed answer's release is written before its response, so it is applied
  before anything its client sends next, whichever worker receives it (the channel's ordering,
  lynkr.storage.db_service). A streamed answer is released in the same loop turn that writes its
  end; a client that sends its next request to another worker within those microseconds, while its
  key is exactly at `max_concurrent`, may get that limit's 429 (retry-after 1 s) — never a wrong
  admission, and only for `max_concurrent` (rpm counts admissions; tokens and USD can only lag).

Semantics (docs/teams.md):
- rpm: requests admitted in the last 60 s (a sliding window of admission times).
- tpm: provider-reported tokens (input + output + cache reads + cache writes) of the answers that
  ended in the last 60 s; a request is admitted while the window is under the limit.
- usd_per_day / usd_per_month: USD charged in the current UTC day / calendar month, charged when
  the answer ends; admitted while under. Overshoot is bounded by the requests already in flight.
- max_concurrent: admitted requests not yet released.
A request is admitted only when every scope (its key, then its team) is under every limit, and
then counted in all of them at once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import datetime, timezone

from lynkr.storage import db_service
from lynkr.storage.db_service import DBServiceError, call, operation

__all__ = ["admit", "admit_async", "release", "release_soon", "charge", "snapshot", "snapshot_async", "serve_here", "here",
           "Ledger", "WINDOW_S", "refusal", "periods"]

log = logging.getLogger("lynkr.teams")

WINDOW_S = 60.0


class _Scope:
    __slots__ = ("admitted", "tokens", "token_sum", "in_flight", "day", "month")

    def __init__(self):
        self.admitted: deque[float] = deque()              # admission times, rpm window
        self.tokens: deque[tuple[float, int]] = deque()    # (end time, tokens), tpm window
        self.token_sum = 0                                  # of `tokens`: no sum over the window per request
        self.in_flight = 0
        self.day: tuple[str, float] = ("", 0.0)            # (UTC date, USD)
        self.month: tuple[str, float] = ("", 0.0)          # (UTC year-month, USD)

    def prune(self, now: float) -> None:
        edge = now - WINDOW_S
        while self.admitted and self.admitted[0] <= edge:
            self.admitted.popleft()
        while self.tokens and self.tokens[0][0] <= edge:
            self.token_sum -= self.tokens.popleft()[1]

    def spent(self, which: str, period: str) -> float:
        p, usd = self.day if which == "day" else self.month
        return usd if p == period else 0.0


_day: tuple = (0.0, -1.0, "", "", None)     # [start, end) of one UTC day, its date, month, a datetime in it


def periods(now: float) -> tuple[str, str, datetime]:
    """(UTC date, UTC year-month, a datetime of that day) of `now`; formatted once a day, not twice
    a request (every admission and release needs them)."""
    global _day
    start, end, day, month, d = _day
    if not start <= now < end:
        d = datetime.fromtimestamp(now, timezone.utc)
        start = d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        day, month = d.strftime("%Y-%m-%d"), d.strftime("%Y-%m")
        _day = (start, start + 86400.0, day, month, d)      # POSIX time: every UTC day is 86400 s
    return day, month, d


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.scopes: dict[tuple[str, str], _Scope] = {}

    def _scope(self, kind: str, name: str) -> _Scope:
        s = self.scopes.get((kind, name))
        if s is None:
            s = self.scopes[(kind, name)] = _Scope()
        return s

    def admit(self, now: float, scopes: list) -> dict | None:
        day, month, dt = periods(now)
        with self.lock:
            found = [(kind, name, limits, self._scope(kind, name)) for kind, name, limits in scopes]
            for kind, name, limits, s in found:
                s.prune(now)
                refusal = _over(kind, name, limits, s, now, day, month, dt)
                if refusal is not None:
                    return refusal
            for _kind, _name, _limits, s in found:
                s.admitted.append(now)
                s.in_flight += 1
        return None

    def release(self, now: float, scopes: list, tokens: int, usd: float, in_flight: bool = True) -> None:
        """End a request admitted here (`in_flight`), or only charge one admitted elsewhere (in Redis)."""
        day, month, _ = periods(now)
        with self.lock:
            for kind, name in scopes:
                s = self._scope(kind, name)
                if in_flight:
                    s.in_flight = max(0, s.in_flight - 1)
                if tokens:
                    s.tokens.append((now, tokens))
                    s.token_sum += tokens
                if usd:
                    s.day = (day, s.spent("day", day) + usd)
                    s.month = (month, s.spent("month", month) + usd)

    def snapshot(self, now: float) -> dict:
        day, month, _ = periods(now)
        with self.lock:
            out = {}
            for (kind, name), s in self.scopes.items():
                s.prune(now)
                out[f"{kind}:{name}"] = {"rpm": len(s.admitted), "tpm": s.token_sum,
                                         "in_flight": s.in_flight, "usd_day": s.spent("day", day),
                                         "usd_month": s.spent("month", month)}
            return out


def _over(kind, name, limits, s: _Scope, now, day, month, dt) -> dict | None:
    rpm = limits.get("rpm")
    if rpm is not None and len(s.admitted) >= rpm:
        wait = s.admitted[0] + WINDOW_S - now if s.admitted else WINDOW_S
        return refusal(kind, name, limits, "rpm", wait, len(s.admitted), dt)
    tpm = limits.get("tpm")
    if tpm is not None:
        used = s.token_sum
        if used >= tpm:
            # Wait until enough of the window has expired to be under the limit again.
            wait, left = WINDOW_S, used
            for t, n in s.tokens:
                left -= n
                if left < tpm:
                    wait = t + WINDOW_S - now
                    break
            return refusal(kind, name, limits, "tpm", wait, used, dt)
    cap = limits.get("max_concurrent")
    if cap is not None and s.in_flight >= cap:
        return refusal(kind, name, limits, "max_concurrent", 1.0, s.in_flight, dt)
    per_day = limits.get("usd_per_day")
    if per_day is not None and s.spent("day", day) >= per_day:
        return refusal(kind, name, limits, "usd_per_day", None, s.spent("day", day), dt)
    per_month = limits.get("usd_per_month")
    if per_month is not None and s.spent("month", month) >= per_month:
        return refusal(kind, name, limits, "usd_per_month", None, s.spent("month", month), dt)
    return None


def refusal(kind: str, name: str, limits: dict, limit: str, wait: float | None, used, dt: datetime) -> dict:
    """The refusal for `limit` of scope (kind, name), worded for a person: {limit, status, retry_after, message}.
    Shared by the local counters and the Redis ones (lynkr/teams/shared.py)."""
    who = f"{kind} {name}"
    value = limits.get(limit)
    if limit == "rpm":
        return {"limit": "rpm", "status": 429, "retry_after": max(1.0, wait),
                "message": f"{who}: rate limit of {value} requests per minute reached; retry in {max(1, round(wait))} s"}
    if limit == "tpm":
        return {"limit": "tpm", "status": 429, "retry_after": max(1.0, wait),
                "message": f"{who}: {value} tokens per minute reached ({used} in the last 60 s); retry in {max(1, round(wait))} s"}
    if limit == "max_concurrent":
        return {"limit": "max_concurrent", "status": 429, "retry_after": 1.0,
                "message": f"{who}: {value} requests already in flight (max_concurrent); retry when one finishes"}
    if limit == "usd_per_day":
        return {"limit": "usd_per_day", "status": 402, "retry_after": None,
                "message": f"{who}: daily budget ${value:.2f} reached, resets 00:00 UTC"}
    nxt = f"{dt.year + (dt.month == 12):04d}-{dt.month % 12 + 1:02d}-01"
    return {"limit": "usd_per_month", "status": 402, "retry_after": None,
            "message": f"{who}: monthly budget ${value:.2f} reached, resets {nxt} 00:00 UTC"}


LEDGER = Ledger()     # in the writer process, or in the one process that serves requests
_here = False


def serve_here() -> None:
    """This process is the only one admitting requests (`lynkr run` with one worker): the counters
    live here even though a writer process runs, and a check costs no round trip."""
    global _here
    _here = True


def here() -> bool:
    """Whether the counters are this process's (`LEDGER`) rather than the writer process's."""
    return _here or not db_service.remote()


@operation("teams.admit", exclusive=False)
def _admit_op(_path: str, p: dict):
    return LEDGER.admit(p["now"], p["scopes"])


@operation("teams.release", exclusive=False)
def _release_op(_path: str, p: dict):
    LEDGER.release(p["now"], p["scopes"], int(p.get("tokens") or 0), float(p.get("usd") or 0.0),
                   p.get("in_flight", True))


@operation("teams.snapshot", exclusive=False)
def _snapshot_op(_path: str, p: dict):
    return LEDGER.snapshot(p["now"])


def admit(scopes: list, now: float | None = None) -> dict | None:
    """None when admitted (and counted), else {limit, status, retry_after, message}."""
    now = time.time() if now is None else now
    if here():
        return LEDGER.admit(now, scopes)
    return call("teams.admit", "", {"now": now, "scopes": scopes}, timeout=5.0)


async def admit_async(scopes: list) -> dict | None:
    """`admit` from the event loop: here, or over this worker's channel to the writer process
    (no thread); in this process when the writer cannot be reached."""
    now = time.time()
    if here():
        return LEDGER.admit(now, scopes)
    ch = await db_service.channel()
    if ch is not None:
        try:
            return await ch.request("teams.admit", "", {"now": now, "scopes": scopes}, timeout=5.0)
        except (ConnectionError, DBServiceError) as e:     # gone, or stuck: a request is never a 5xx for it
            _fell_back(e)
    return LEDGER.admit(now, scopes)


def release(scopes: list, tokens: int = 0, usd: float = 0.0, now: float | None = None, *, in_flight: bool = True) -> None:
    """End a request admitted by `admit` (`in_flight`) and charge its tokens and USD; or, with
    `in_flight=False`, only charge an answer admitted elsewhere (`charge`)."""
    now = time.time() if now is None else now
    if here():
        LEDGER.release(now, scopes, tokens, usd, in_flight)
        return
    call("teams.release", "", {"now": now, "scopes": scopes, "tokens": tokens, "usd": usd, "in_flight": in_flight},
         timeout=5.0)


def release_soon(scopes: list, tokens: int = 0, usd: float = 0.0, *, in_flight: bool = True) -> None:
    """`release` from the event loop without waiting: here, or one frame on this worker's channel
    (applied before any admission that is sent after it, lynkr.storage.db_service)."""
    now = time.time()
    if not here():
        ch = db_service.current_channel()
        if ch is not None:
            try:
                ch.send("teams.release", "", {"now": now, "scopes": scopes, "tokens": tokens, "usd": usd,
                                              "in_flight": in_flight})
                return
            except ConnectionError as e:
                _fell_back(e)
    # The channel is gone (the writer process died): the request was admitted there, or here
    # after the loss; either way this process's counters are the ones that still count.
    LEDGER.release(now, scopes, tokens, usd, in_flight)


def charge(scopes: list, tokens: int = 0, usd: float = 0.0, now: float | None = None) -> None:
    """Charge an answer admitted in Redis whose release could not reach it: the budgets this host
    falls back to while Redis is down then know about it."""
    release(scopes, tokens, usd, now, in_flight=False)


def snapshot(now: float | None = None) -> dict:
    """{"key:NAME" | "team:NAME": {rpm, tpm, in_flight, usd_day, usd_month}} of every scope counted."""
    now = time.time() if now is None else now
    if here():
        return LEDGER.snapshot(now)
    return call("teams.snapshot", "", {"now": now}, timeout=5.0)


async def snapshot_async() -> dict:
    """`snapshot` from the event loop; over this worker's channel, so it follows this worker's releases."""
    now = time.time()
    if not here():
        ch = await db_service.channel()
        if ch is not None:
            try:
                return await ch.request("teams.snapshot", "", {"now": now}, timeout=5.0)
            except (ConnectionError, DBServiceError) as e:
                _fell_back(e)
    return LEDGER.snapshot(now)


_fallback_logged = False


def _fell_back(e: Exception) -> None:
    global _fallback_logged
    if not _fallback_logged:
        _fallback_logged = True
        log.warning("client-key counters: the writer process is unreachable (%s); counting in this worker", e)
