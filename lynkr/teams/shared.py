"""The key and team counters in Redis (`state: {redis: URL}`): every replica of a fleet admits a
key's rpm once between them, not once each.

The semantics are lynkr/teams/ledger.py's (docs/teams.md), made atomic by two Lua scripts, one
round trip each: `admit` checks every scope of the request (its key, then its team) against every
limit and, only when all are under, counts it in all of them; `release` ends its in-flight count
and charges tokens and USD. Time is Redis's own clock (TIME), so replicas' clocks do not matter.

Per scope (`<prefix>:limits:<kind>:<name>:…`):
- `rpm`: a sorted set of admitted requests scored by admission time, pruned to the 60 s window;
- `tpm`: a sorted set of `<request>:<tokens>` scored by the end time, pruned alike;
- `inflight`: a sorted set of admitted requests scored by a lease's end (`LEASE_S`): a replica
  killed mid-request cannot hold a slot for longer than that;
- `usd:<YYYY-MM-DD>` and `usd:<YYYY-MM>`: floats, expiring after their period.
Each key expires when its window or period is over, so an idle key leaves nothing behind.

A Redis cluster is not supported (a request's key and team may hash to different slots).
"""
from __future__ import annotations

import time
import uuid

from lynkr.storage.shared_state import SharedState, Unavailable
from lynkr.teams.ledger import WINDOW_S, periods, refusal

__all__ = ["admit", "release", "LEASE_S"]

LEASE_S = 900.0          # the longest a request counts as in flight if its release never comes
_LIMITS = ("rpm", "tpm", "max_concurrent", "usd_per_day", "usd_per_month")

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local member, n, window, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 0, n - 1 do
  local k, a = i * 5, 4 + i * 5
  local rpm, tpm, cap = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local pday, pmonth = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 2], '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
  if rpm >= 0 then
    local c = redis.call('ZCARD', KEYS[k + 1])
    if c >= rpm then
      local oldest = redis.call('ZRANGE', KEYS[k + 1], 0, 0, 'WITHSCORES')
      local wait = window
      if oldest[2] then wait = tonumber(oldest[2]) + window - now end
      return {i, 'rpm', tostring(wait), tostring(c)}
    end
  end
  if tpm >= 0 then
    local rows = redis.call('ZRANGE', KEYS[k + 2], 0, -1, 'WITHSCORES')
    local used = 0
    for j = 1, #rows, 2 do used = used + tonumber(string.match(rows[j], ':(%d+)$') or '0') end
    if used >= tpm then
      local wait, left = window, used
      for j = 1, #rows, 2 do
        left = left - tonumber(string.match(rows[j], ':(%d+)$') or '0')
        if left < tpm then wait = tonumber(rows[j + 1]) + window - now; break end
      end
      return {i, 'tpm', tostring(wait), tostring(used)}
    end
  end
  if cap >= 0 then
    local c = redis.call('ZCARD', KEYS[k + 3])
    if c >= cap then return {i, 'max_concurrent', '1', tostring(c)} end
  end
  if pday >= 0 then
    local spent = tonumber(redis.call('GET', KEYS[k + 4]) or '0')
    if spent >= pday then return {i, 'usd_per_day', '0', tostring(spent)} end
  end
  if pmonth >= 0 then
    local spent = tonumber(redis.call('GET', KEYS[k + 5]) or '0')
    if spent >= pmonth then return {i, 'usd_per_month', '0', tostring(spent)} end
  end
end
for i = 0, n - 1 do
  local k = i * 5
  redis.call('ZADD', KEYS[k + 1], now, member)
  redis.call('PEXPIRE', KEYS[k + 1], math.floor((window + 1) * 1000))
  redis.call('ZADD', KEYS[k + 3], now + lease, member)
  redis.call('PEXPIRE', KEYS[k + 3], math.floor(lease * 1000))
end
return 0
"""

_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local member, n, tokens, usd, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 0, n - 1 do
  local k = i * 4
  redis.call('ZREM', KEYS[k + 2], member)
  if tokens > 0 then
    redis.call('ZADD', KEYS[k + 1], now, member .. ':' .. tokens)
    redis.call('PEXPIRE', KEYS[k + 1], math.floor((window + 1) * 1000))
  end
  if usd > 0 then
    redis.call('INCRBYFLOAT', KEYS[k + 3], ARGV[6])
    redis.call('EXPIRE', KEYS[k + 3], 172800)
    redis.call('INCRBYFLOAT', KEYS[k + 4], ARGV[6])
    redis.call('EXPIRE', KEYS[k + 4], 2764800)
  end
end
return 0
"""


def _base(state: SharedState, kind: str, name: str) -> str:
    return state.key("limits", kind, name, "")


async def admit(state: SharedState, scopes: list, now: float | None = None) -> tuple[dict | None, str]:
    """(None, member) when admitted and counted, else (the refusal, member). Raises
    lynkr.storage.shared_state.Unavailable when Redis cannot answer (the caller counts locally)."""
    day, month, dt = periods(time.time() if now is None else now)
    member = uuid.uuid4().hex
    keys, args = [], [member, len(scopes), WINDOW_S, LEASE_S]
    for kind, name, limits in scopes:
        b = _base(state, kind, name)
        keys += [b + "rpm", b + "tpm", b + "inflight", b + "usd:" + day, b + "usd:" + month]
        args += [-1 if limits.get(k) is None else limits[k] for k in _LIMITS]
    script = state.script(_ADMIT)
    sent = state.up             # with the circuit open nothing reaches Redis: nothing to undo
    try:
        got = await state.run("limits.admit", lambda r: script(keys=keys, args=args))
    except Unavailable:
        # A script that timed out may still run once Redis reads it (a hung Redis wakes up): then
        # its in-flight mark must not hold a max_concurrent slot for the whole lease.
        if sent:
            names = [[kind, name] for kind, name, _ in scopes]
            state.when_back(lambda: _quietly(release(state, names, member)))
        raise
    if got == 0:
        return None, member
    i, limit, wait, used = int(got[0]), got[1].decode(), float(got[2]), float(got[3])
    kind, name, limits = scopes[i]
    used = int(used) if limit in ("rpm", "tpm", "max_concurrent") else used
    return refusal(kind, name, limits, limit, wait, used, dt), member


async def _quietly(coro) -> None:
    try:
        await coro
    except Unavailable:
        pass


async def release(state: SharedState, scopes: list, member: str, tokens: int = 0, usd: float = 0.0,
                  now: float | None = None) -> None:
    """End the request's in-flight count and charge it. Raises Unavailable like `admit`."""
    day, month, _ = periods(time.time() if now is None else now)
    keys = []
    for kind, name in scopes:
        b = _base(state, kind, name)
        keys += [b + "tpm", b + "inflight", b + "usd:" + day, b + "usd:" + month]
    args = [member, len(scopes), int(tokens), float(usd), WINDOW_S, repr(float(usd))]
    script = state.script(_RELEASE)
    await state.run("limits.release", lambda r: script(keys=keys, args=args))
