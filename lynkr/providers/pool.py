"""Several upstream keys for one provider: requests spread over them, a key the upstream refuses
sits out while the others serve.

    anthropic:
      kind: anthropic
      api_key: ["{{ env.ANTHROPIC_KEY_1 }}", "{{ env.ANTHROPIC_KEY_2 }}", "{{ env.ANTHROPIC_KEY_3 }}"]
      # or api_keys: [...];  key_pool: {cooldown_s: 30, disable_s: 300}

- **Spread:** round robin over the members that are not benched (each new attempt takes the next
  one), so N keys carry ~1/N of the traffic each and a benched member's share goes evenly to the
  others; a benched member is skipped, not waited for.
- **Benched:** a member answered 429 sits out for the answer's `retry-after` (else `cooldown_s`);
  a member answered 401 or 403 (revoked, wrong project) sits out `disable_s`, then gets one try
  again. The request that met it is sent again at once on the next member (it does not use up a
  retry), so one bad key is never seen by the client. With every member benched, the call fails
  as a retryable 429 naming the wait, which `fallback` can route around.
- **State** is per process and per key, not per pipeline load: a reload, or another pipeline of
  the same process using the same key, sees that a key is cooling down (the upstream's limit is
  the key's, whoever sends it). With `--workers N` each worker learns on its own.
- **Masked:** a member is shown as `…` and its last 4 characters (health, /metrics, telemetry's
  `upstream_key`); the secret itself never leaves the adapter's request headers.

The adapters read `provider.api_key` where they build headers; during one attempt that is the
member the attempt leased (`lease`, a context variable of the request's task), so no adapter
knows about pools.
"""
from __future__ import annotations

import contextvars
import hashlib
import itertools
import threading
import time
from dataclasses import dataclass, field

from lynkr.errors import ProxyError

__all__ = ["KeyPool", "Member", "pool_members", "leased", "mask", "DEFAULT_COOLDOWN_S", "DEFAULT_DISABLE_S"]

DEFAULT_COOLDOWN_S = 30.0       # a 429 without retry-after
DEFAULT_DISABLE_S = 300.0       # a 401/403: a revoked key does not come back in seconds

_LEASED: contextvars.ContextVar["Member | None"] = contextvars.ContextVar("lynkr_upstream_key", default=None)


def mask(secret: str) -> str:
    return "…" + secret[-4:]


def pool_members(config: dict) -> list[str]:
    """The provider's upstream keys in order: `api_keys:`, else `api_key` when it is a list, else
    the one `api_key`. Empty entries (an unset variable) are left out."""
    keys = config.get("api_keys")
    if keys is None:
        keys = config.get("api_key")
    if not isinstance(keys, list):
        keys = [keys]
    return [k for k in keys if isinstance(k, str) and k]


@dataclass
class Member:
    """One upstream key's state in this process (shared by every pool that holds the key)."""

    secret: str = field(repr=False)
    masked: str
    benched_until: float = 0.0          # monotonic
    reason: str | None = None           # why it was benched last: "429", "401", "403"
    served: int = 0                     # attempts sent with it (call_resilient counts them)
    benched: int = 0                    # times it was benched

    def available(self, now: float) -> bool:
        return now >= self.benched_until


_members: dict[bytes, Member] = {}
_members_lock = threading.Lock()


def _member(secret: str) -> Member:
    digest = hashlib.sha256(secret.encode()).digest()
    with _members_lock:
        m = _members.get(digest)
        if m is None:
            m = _members[digest] = Member(secret, mask(secret))
        return m


class KeyPool:
    def __init__(self, provider: str, secrets: list[str], options: dict | None = None):
        options = options or {}
        self.provider = provider
        self.members = [_member(s) for s in secrets]
        self._ids = {id(m) for m in self.members}
        self.cooldown_s = float(options.get("cooldown_s", DEFAULT_COOLDOWN_S))
        self.disable_s = float(options.get("disable_s", DEFAULT_DISABLE_S))
        self._turn = itertools.count()

    def __len__(self) -> int:
        return len(self.members)

    def leased_secret(self) -> str | None:
        """The secret of the member leased for the running attempt, when it is one of this pool's."""
        m = _LEASED.get()
        return m.secret if m is not None and id(m) in self._ids else None

    def pick(self, now: float | None = None) -> Member:
        """The next member in turn that is not benched; a retryable 429 when all are."""
        now = time.monotonic() if now is None else now
        ready = [m for m in self.members if m.available(now)]
        if ready:
            # In turn over the members serving now, so a benched one's share is spread evenly.
            return ready[next(self._turn) % len(ready)]
        n = len(self.members)
        wait = min(m.benched_until for m in self.members) - now
        raise ProxyError(429, f"all {n} keys of provider '{self.provider}' are cooling down after the upstream "
                              f"refused them; the first is back in {max(1, round(wait))} s",
                         type="rate_limit_error", retry_after=max(1.0, wait), retryable=True, fallbackable=True,
                         provider=self.provider, code="key_pool_exhausted")

    def benches(self, err: ProxyError) -> bool:
        """Whether this upstream error is about the key that sent it (so another key may serve)."""
        return err.provider == self.provider and err.status in (401, 403, 429)

    def bench(self, m: Member, err: ProxyError, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if err.status == 429:
            span = err.retry_after if err.retry_after is not None else self.cooldown_s
        else:
            span = self.disable_s
        m.benched_until = max(m.benched_until, now + span)
        m.reason = str(err.status)
        m.benched += 1

    def any_available(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return any(m.available(now) for m in self.members)

    def snapshot(self, now: float | None = None) -> list[dict]:
        now = time.monotonic() if now is None else now
        out = []
        for m in self.members:
            state = "ok" if m.available(now) else ("cooling" if m.reason == "429" else "disabled")
            row = {"key": m.masked, "state": state, "served": m.served, "benched": m.benched}
            if state != "ok":
                row["back_in_s"] = round(m.benched_until - now, 1)
                row["reason"] = m.reason
            out.append(row)
        return out


class leased:
    """`with leased(member):` — the adapter's `api_key` is the member's for this attempt."""

    def __init__(self, member: Member | None):
        self.member = member
        self._token = None

    def __enter__(self):
        self._token = _LEASED.set(self.member)
        return self.member

    def __exit__(self, *exc):
        _LEASED.reset(self._token)
        return False
