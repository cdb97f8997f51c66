"""What to do when an upstream fails: the error taxonomy, retries, circuit breakers, and the
first-byte rule that decides whether a failure can still be hidden from the client.

Taxonomy (issue #4):
- retryable (same target again, after a backoff): connect errors, timeouts, 408/429/500/502/503/504/529;
- fallbackable (another target): the retryable ones plus "model not found" (404) and a model that
  "does not support" what the request needs (tools, thinking, images);
- fatal (relayed to the client in its own shape, with the provider's wording): 400/401/403/413 and
  context-length errors — Claude Code's auto-compaction matches "prompt is too long".
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lynkr.errors import ProxyError
from lynkr.exchange import Response
from lynkr.providers.pool import leased
from lynkr.wire.sse import parse_events

__all__ = ["RetryPolicy", "Breaker", "Breakers", "classify_status", "context_length_error", "peek_first",
           "stream_guard", "call_resilient"]

# Upstreams word "the prompt does not fit" in many ways; all of them are fatal (no retry, no
# fallback to a same-sized model would help), and Claude Code compacts when it reads the wording.
_CONTEXT_WORDS = ("prompt is too long", "input is too long", "context_length_exceeded", "maximum context length",
                  "context length", "exceeds the available context size", "too many tokens", "context window")


def context_length_error(message: str) -> bool:
    low = (message or "").lower()
    return any(w in low for w in _CONTEXT_WORDS)


def classify_status(status: int, message: str = "") -> tuple[bool, bool]:
    """(retryable, fallbackable) for an upstream HTTP status and its message."""
    if context_length_error(message) and status < 500:
        return False, False
    retryable = status in (408, 429, 500, 502, 503, 504, 529)
    # "model not found" and "<model> does not support tools|thinking|images" (Ollama's 400 for a
    # model without that capability): this request can't go to this model, another may serve it.
    capability = status == 400 and "does not support" in (message or "").lower()
    return retryable, retryable or status == 404 or capability


def upstream_error(provider: str, status: int, message: str, *, type: str | None = None,
                   retry_after: float | None = None, code: str | None = None) -> ProxyError:
    """A ProxyError for an upstream's HTTP error, classified by the taxonomy above."""
    if status == 424:          # Bedrock ModelErrorException: the model failed, not the request
        status = 502
    retryable, fallbackable = classify_status(status, message)
    if context_length_error(message) and status in (400, 413, 422):
        # Claude Code's auto-compaction keys on a 400 invalid_request_error saying "prompt is too
        # long" (or Bedrock's "Input is too long."); other providers' wording is kept after it.
        status, type = 400, "invalid_request_error"
        low = message.lower()
        if "prompt is too long" not in low and "input is too long" not in low:
            message = f"prompt is too long: {message}"
    if status >= 400 and status not in (400, 401, 402, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 529):
        status = 502 if status >= 500 else 400
    if status == 422:
        status = 400
    if status == 408:
        status = 504
    if status == 504 and type is None:
        type = "timeout_error"
    return ProxyError(status, message, type=type, retry_after=retry_after, retryable=retryable,
                      fallbackable=fallbackable, provider=provider, code=code)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass
class RetryPolicy:
    attempts: int = 2                 # total tries on one target (1 = no retry)
    base_s: float = 0.25
    max_s: float = 8.0
    max_retry_after_s: float = 30.0   # a longer Retry-After is relayed to the client instead of waited out

    @classmethod
    def from_config(cls, conf: dict | None) -> "RetryPolicy":
        conf = conf or {}
        return cls(attempts=int(conf.get("attempts", cls.attempts)), base_s=float(conf.get("base_s", cls.base_s)),
                   max_s=float(conf.get("max_s", cls.max_s)),
                   max_retry_after_s=float(conf.get("max_retry_after_s", cls.max_retry_after_s)))

    def delay(self, attempt: int, err: ProxyError) -> float | None:
        """Seconds to wait before try `attempt + 1`, or None when it should not be retried."""
        if attempt >= self.attempts or not err.retryable:
            return None
        if err.retry_after is not None:
            return err.retry_after if err.retry_after <= self.max_retry_after_s else None
        # Full jitter: spreads a burst of clients that failed together.
        return random.uniform(0, min(self.max_s, self.base_s * (2 ** (attempt - 1))))


@dataclass
class Breaker:
    """Closed → open after `threshold` failures within `window_s`; after `cooldown_s` one probe is
    let through (half-open); its success closes the breaker, its failure re-opens it."""

    threshold: int = 5
    window_s: float = 60.0
    cooldown_s: float = 30.0
    state: str = "closed"
    opened_at: float = 0.0
    failures: deque = field(default_factory=deque)
    probing: bool = False
    opens: int = 0
    conf: dict | None = field(default=None, repr=False, compare=False)   # the settings applied (Breakers.get)
    key: tuple = field(default=(), repr=False, compare=False)             # (provider, model)
    # Told "open" / "closed" when this process changes the state (lynkr/providers/shared_breakers.py).
    listener: Any = field(default=None, repr=False, compare=False)

    def allow(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.state == "closed":
            return True
        if self.state == "open" and now - self.opened_at >= self.cooldown_s:
            self.state = "half_open"
            self.probing = False
        if self.state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def retry_in(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(0.0, self.cooldown_s - (now - self.opened_at))

    def release(self) -> None:
        """A probe that ended without a verdict (the client went away): let the next one try."""
        if self.state == "half_open":
            self.probing = False

    def success(self) -> None:
        was = self.state
        self.state = "closed"
        self.probing = False
        self.failures.clear()
        if was != "closed" and self.listener is not None:
            self.listener(self, "closed")

    def failure(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.state == "half_open":
            self._open(now)
            return
        self.failures.append(now)
        while self.failures and now - self.failures[0] > self.window_s:
            self.failures.popleft()
        if len(self.failures) >= self.threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = "open"
        self.opened_at = now
        self.probing = False
        self.failures.clear()
        self.opens += 1
        if self.listener is not None:
            self.listener(self, "open")

    def opened_elsewhere(self, remaining_s: float) -> None:
        """Another replica opened this breaker: open it here for what is left of its cooldown."""
        if self.state == "open" and self.retry_in() >= remaining_s:
            return
        self.state = "open"
        self.opened_at = time.monotonic() - max(0.0, self.cooldown_s - remaining_s)
        self.probing = False
        self.failures.clear()

    def closed_elsewhere(self) -> None:
        """Another replica's probe succeeded: the upstream answers again."""
        self.state = "closed"
        self.probing = False
        self.failures.clear()

    def snapshot(self) -> dict:
        return {"state": self.state, "recent_failures": len(self.failures), "opens": self.opens}


_NO_SETTINGS: dict = {}


class Breakers:
    """One breaker per provider+model. Kept in the engine's `shared` dict so a hot reload does not
    forget that an upstream is down."""

    def __init__(self):
        self._by_key: dict[str, Breaker] = {}
        self.settings: dict[str, dict] = {}      # provider name -> {threshold, window_s, cooldown_s}
        self.listener = None                     # given to every breaker (shared_breakers.py)

    def get(self, provider: str, model: str) -> Breaker:
        key = (provider, model)
        b = self._by_key.get(key)
        if b is None:
            b = self._by_key[key] = Breaker(key=key, listener=self.listener)
        conf = self.settings.get(provider) or _NO_SETTINGS
        if b.conf is not conf:
            # Settings follow the current pipeline (a reload may change them); state is kept.
            b.conf = conf
            b.threshold = int(conf.get("threshold", Breaker.threshold))
            b.window_s = float(conf.get("window_s", Breaker.window_s))
            b.cooldown_s = float(conf.get("cooldown_s", Breaker.cooldown_s))
        return b

    def all(self) -> list[Breaker]:
        return list(self._by_key.values())

    def snapshot(self) -> dict:
        items = sorted(self._by_key.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))
        return {f"{p}:{m}": b.snapshot() for (p, m), b in items}


def breakers_for(shared: dict) -> Breakers:
    b = shared.get("provider_breakers")
    if b is None:
        b = shared["provider_breakers"] = Breakers()
    return b


async def _aiter_first(events, first):
    yield first
    async for ev in events:
        yield ev


async def peek_first(resp: Response, timeout: float | None) -> Response:
    """Wait for a stream's first event, so a failure before the first byte reaches the client is
    still a ProxyError that retry and fallback can act on. Returns a Response that replays it.
    A body that can peek (wire.sse.SSEBody) parses only that event and keeps it."""
    if resp.events is None:
        return resp
    gen = resp.events
    peek = getattr(gen, "peek", None)
    try:
        # asyncio.timeout, not wait_for: no task per call, so the first event is taken in this
        # task's own step when it is already buffered (each extra loop turn delays the first byte).
        async with asyncio.timeout(timeout):
            first = await (peek() if peek is not None else gen.__anext__())
        if first is None:
            raise StopAsyncIteration
        if first.get("type") == "error":
            # Nothing reached the client yet: an error as the first event is a failed call.
            raise _event_error(first, None, retryable=True)
    except StopAsyncIteration:
        await _close(gen)
        raise ProxyError(502, "the provider closed the stream before sending anything", retryable=True) from None
    except asyncio.TimeoutError:
        await _close(gen)
        raise ProxyError(504, f"no first byte from the provider within {timeout:g}s", type="timeout_error",
                         retryable=True) from None
    except BaseException:
        await _close(gen)
        raise
    if peek is None:
        resp.events = _aiter_first(gen, first)
    return resp


async def _close(gen) -> None:
    close = getattr(gen, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            pass


def _event_error(ev: dict, provider: str | None, retryable: bool | None = None) -> ProxyError:
    err = ev.get("error") or {}
    return ProxyError(529 if err.get("type") == "overloaded_error" else 502,
                      err.get("message") or "the provider reported an error mid-stream",
                      type=err.get("type"), provider=provider, retryable=retryable, fallbackable=retryable)


def _stream_failure(e: Exception, provider: str) -> ProxyError:
    """A transport or decoding failure after the stream started, as the error the client sees."""
    import aiohttp

    if isinstance(e, asyncio.TimeoutError):
        return ProxyError(504, f"provider '{provider}' stopped sending (read timeout)", type="timeout_error",
                          provider=provider)
    if isinstance(e, (aiohttp.ClientError, OSError, ValueError)):
        return ProxyError(502, f"provider '{provider}' stream failed: {type(e).__name__}: {e}", provider=provider)
    # a decoder's own error (bad CRC in an AWS frame, …): still a clean end
    return ProxyError(502, f"provider '{provider}' sent a stream that cannot be read: {type(e).__name__}: {e}",
                      provider=provider)


def stream_guard(events, provider: str, breaker: Breaker | None = None):
    """Wrap a canonical stream so any transport failure mid-stream becomes a ProxyError (the
    renderer turns it into a well-formed error event) and the breaker learns how it ended.
    A body that can also be read as bytes (wire.sse.SSEBody) keeps that ability, guarded alike."""
    if hasattr(events, "reads"):
        return GuardedBody(events, provider, breaker)
    return _guard_events(events, provider, breaker)


class _Judged:
    """The breaker's verdict on one stream, whichever way it is read: success once it ran to its
    end (`ok = True`), failure on an error (a transport failure becomes a ProxyError), nothing when
    the client hung up (that says nothing about the upstream's health). The upstream's stream is
    closed either way."""

    def __init__(self, body, provider: str, breaker: Breaker | None):
        self.body, self.provider, self.breaker = body, provider, breaker
        self.ok: bool | None = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, et, e, tb):
        try:
            if et is not None and issubclass(et, Exception):
                self.ok = False
                if not issubclass(et, ProxyError):
                    raise _stream_failure(e, self.provider) from None
        finally:
            _verdict(self.breaker, self.ok)
            await _close(self.body)
        return False


async def _guard_events(events, provider: str, breaker: Breaker | None):
    async with _Judged(events, provider, breaker) as judged:
        async for ev in events:
            if ev.get("type") == "error":
                raise _event_error(ev, provider)
            yield ev
        judged.ok = True


def _verdict(breaker: Breaker | None, outcome: bool | None) -> None:
    if breaker is not None:
        if outcome is None:
            breaker.release()
        else:
            (breaker.success if outcome else breaker.failure)()


_ERROR_AT_START = b"event: error\n"
_ERROR_INSIDE = b"\n\nevent: error\n"


class GuardedBody:
    """stream_guard for an SSEBody: iterated, the guarded events; `reads()`, the guarded bytes.
    In bytes an `error` event is found before it is written (a byte search per read, no parse),
    and the client gets what the event path would send: the events before it, then the
    renderer's own error event."""

    def __init__(self, body, provider: str, breaker: Breaker | None):
        self.body = body
        self.protocol = body.protocol
        self.provider = provider
        self.breaker = breaker
        self._gen = None

    @property
    def verbatim(self) -> bool:
        return self._gen is None and self.body.verbatim

    def __aiter__(self):
        if self._gen is None:
            self._gen = _guard_events(self.body, self.provider, self.breaker)
        return self._gen

    def reads(self, feed=None):
        """The body's bytes (SSEBody.reads); `feed` gets each piece's events after its bytes."""
        if self._gen is None:
            self._gen = self._reads(feed)
        return self._gen

    async def _reads(self, feed):
        async with _Judged(self.body, self.provider, self.breaker) as judged:
            async for chunk in self.body.reads(feed):
                if chunk.startswith(_ERROR_AT_START):
                    i = 0
                else:
                    i = chunk.find(_ERROR_INSIDE)
                    i = i + 2 if i >= 0 else -1
                if i >= 0:
                    if i:
                        yield chunk[:i]
                        if feed is not None:      # the body, left at this piece, feeds no more
                            feed(parse_events(chunk[:i]))
                    evs = parse_events(chunk[i:chunk.find(b"\n\n", i) + 2])
                    raise _event_error(evs[0] if evs else {}, self.provider)
                yield chunk
            judged.ok = True

    async def aclose(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            await _close(gen)
        # A generator closed before its first step runs no `finally`: settle here. Both are
        # idempotent (release only frees a half-open probe; the body closes once).
        _verdict(self.breaker, None)
        await _close(self.body)


def as_proxy_error(e: BaseException, provider: str) -> ProxyError:
    """Transport exceptions (connect refused, reset, timeout, garbage JSON) in the taxonomy."""
    import aiohttp

    if isinstance(e, ProxyError):
        return e
    if isinstance(e, asyncio.TimeoutError):
        return ProxyError(504, f"provider '{provider}' timed out", type="timeout_error", provider=provider,
                          retryable=True)
    if isinstance(e, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
        return ProxyError(502, f"cannot reach provider '{provider}': {e}", provider=provider, retryable=True)
    if isinstance(e, (aiohttp.ClientError, OSError)):
        return ProxyError(502, f"provider '{provider}' connection failed: {type(e).__name__}: {e}",
                          provider=provider, retryable=True)
    if isinstance(e, ValueError):   # orjson.JSONDecodeError and friends: the body was not what it claimed
        return ProxyError(502, f"provider '{provider}' sent an unreadable response: {e}", provider=provider,
                          retryable=True)
    return ProxyError(502, f"provider '{provider}' failed: {type(e).__name__}: {e}", provider=provider,
                      retryable=False, fallbackable=True, fault="proxy")


def _not_sent(e: Exception, provider: str) -> ProxyError:
    """An adapter that raised before it posted anything: the request did not fit what the adapter
    reads (the edge validator let a shape through that this upstream's conversion cannot take).
    Not the upstream's fault, and the same body would fail on a fallback target alike."""
    return ProxyError(400, f"the request cannot be sent to provider '{provider}': {type(e).__name__}: {e}",
                      provider=provider, retryable=False, fallbackable=False, fault="client")


def _mask_client_auth(err: ProxyError, x) -> ProxyError:
    # A forwarded client credential is nobody's registered secret: an upstream that echoes it
    # back (in a 401's wording) must not put it in the client's body, a log line or telemetry.
    for v in (x.client_auth or {}).values():
        for part in (v, v.partition(" ")[2]):
            if len(part) >= 8 and part in err.message:
                err.message = err.message.replace(part, "***")
                err.args = (err.message,)
    return err


@dataclass
class Attempt:
    target: str
    status: int | None
    error: str | None
    ms: int


async def _send(provider, x, model: str, first_byte_s: float | None) -> Response:
    # The first-byte limit bounds a stream's start; a non-streaming answer is bounded by the
    # read timeout instead (a long generation is not a hung upstream).
    if first_byte_s:
        async with asyncio.timeout(first_byte_s):
            return await provider.send(x, model)
    # no timer to arm: asyncio.timeout(None) still costs ~15 µs a request
    return await provider.send(x, model)


async def call_resilient(provider, x, model: str, *, retry: RetryPolicy, breakers: Breakers | None,
                         first_byte_s: float | None, log: list | None = None) -> Response:
    """One target: breaker check, send, wait for the first byte, retry retryable failures with
    backoff. Raises the last ProxyError when the target cannot answer."""
    breaker = breakers.get(provider.name, model) if breakers is not None else None
    pool = getattr(provider, "pool", None)
    attempt = switches = 0
    while True:
        attempt += 1
        # A pool of upstream keys: this attempt's key (all of them benched: a retryable 429).
        member = pool.pick() if pool is not None else None
        if breaker is not None and not breaker.allow():
            raise ProxyError(503, f"circuit open for {provider.name}:{model} after repeated failures; "
                                  f"next probe in {breaker.retry_in():.0f}s",
                             type="overloaded_error", retry_after=breaker.retry_in(), retryable=True,
                             fallbackable=True, provider=provider.name, code="circuit_open")
        t0 = time.perf_counter()
        x.upstream_request = None       # set by the adapter once it has built a body to post
        if x.trace is not None:
            x.trace.upstream(provider.name, provider.kind, model)
        try:
            fb = first_byte_s if x.request.get("stream") else None
            if member is None:
                resp = await _send(provider, x, model, fb)
            else:
                member.served += 1
                with leased(member):        # the adapter's api_key is this member's
                    resp = await _send(provider, x, model, fb)
                x.vars["upstream_key"] = member.masked
            resp = await peek_first(resp, fb)
        except asyncio.TimeoutError:
            err = ProxyError(504, f"no response from provider '{provider.name}' within {first_byte_s:g}s",
                             type="timeout_error", provider=provider.name, retryable=True)
        except asyncio.CancelledError:
            if breaker is not None:
                breaker.release()
            raise
        except Exception as e:
            import aiohttp
            built = x.upstream_request is not None or isinstance(e, (ProxyError, aiohttp.ClientError, OSError))
            err = as_proxy_error(e, provider.name) if built else _not_sent(e, provider.name)
            if built and err.provider is None:
                err.fault = "upstream"      # an adapter's error about what the upstream sent
        else:
            if log is not None:
                log.append({"target": f"{provider.name}:{model}", "status": resp.status,
                            "ms": int((time.perf_counter() - t0) * 1000)})
            if resp.events is not None:
                # The breaker hears about a stream when it ends, not when it starts.
                resp.events = stream_guard(resp.events, provider.name, breaker)
            elif breaker is not None:
                breaker.success()
            return resp
        if log is not None:
            log.append({"target": f"{provider.name}:{model}", "status": err.status, "error": err.message[:200],
                        "ms": int((time.perf_counter() - t0) * 1000)})
        if x.client_auth:
            _mask_client_auth(err, x)
        if x.trace is not None:
            x.trace.upstream_failed(err)
        if member is not None and pool.benches(err):
            # This key's refusal, not the provider's: it sits out and, while another key can
            # serve, the request goes again at once on that one (not counted as a retry).
            pool.bench(member, err)
            if breaker is not None:
                breaker.release()
            if switches < len(pool) - 1 and pool.any_available():
                switches += 1
                attempt -= 1
                continue
            raise err
        if breaker is not None:
            if err.fault != "upstream":
                breaker.release()       # says nothing about the upstream's health
            else:
                # A 4xx (other than 408/429) means the upstream is up and answering: good news
                # for its health, even if this request was bad.
                (breaker.failure if (err.retryable or err.status >= 500) else breaker.success)()
        wait = retry.delay(attempt, err)
        if wait is None:
            raise err
        await asyncio.sleep(wait)
