"""Circuit breakers shared by the replicas of a fleet (`state: {redis: URL}`): an upstream one replica
found down is down for all of them, without each paying its own `threshold` failures.

The request path stays local: `Breaker.allow()` reads this process's breaker, never Redis. What is
shared is the change of state:
- a breaker this process opens is written as `<prefix>:breaker:<provider>:<model>` with a Redis
  TTL of its cooldown, and announced on the `<prefix>:breakers` channel;
- every replica listens on that channel (one pub/sub connection per process) and opens its own
  breaker for what is left of the cooldown; after the cooldown each replica probes on its own;
- a successful probe (or an admin reset) deletes the key and announces `closed`: the others close;
- a replica that (re)connects reads the keys still alive, so it learns of openings it missed.
Redis unavailable: each replica's breakers are its own, as without `state`.
"""
from __future__ import annotations

import asyncio
import logging

import orjson

from lynkr.providers.resilience import Breaker, Breakers
from lynkr.storage.shared_state import SharedState

__all__ = ["share_breakers"]

log = logging.getLogger("lynkr.state")

LISTEN_POLL_S = 1.0


class SharedBreakers:
    def __init__(self, state: SharedState, breakers: Breakers):
        self.state = state
        self.breakers = breakers
        self.channel = state.key("breakers")
        self.prefix = state.key("breaker", "")
        breakers.listener = self.changed
        for b in breakers.all():
            b.listener = self.changed
        self.task = state.background(self._listen())

    # -- this process changed a breaker ---------------------------------------------------------
    def changed(self, breaker: Breaker, what: str) -> None:
        provider, model = breaker.key
        key = self.prefix + orjson.dumps([provider, model]).decode()
        msg = orjson.dumps({"what": what, "provider": provider, "model": model, "cooldown_s": breaker.cooldown_s,
                            "from": self.state.instance})

        async def tell(r):
            async with r.pipeline(transaction=False) as p:
                if what == "open":
                    p.set(key, msg, px=max(1, int(breaker.cooldown_s * 1000)))
                else:
                    p.delete(key)
                p.publish(self.channel, msg)
                return await p.execute()
        try:
            self.state.spawn("breaker.publish", tell)
        except RuntimeError:          # no running loop (a synchronous caller): nothing to tell
            pass

    # -- the others changed one -----------------------------------------------------------------
    def _apply(self, raw: bytes, remaining_s: float | None = None) -> None:
        try:
            msg = orjson.loads(raw)
            if msg.get("from") == self.state.instance:
                return
            b = self.breakers.get(str(msg["provider"]), str(msg["model"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return
        if msg.get("what") == "open":
            b.opened_elsewhere(float(msg.get("cooldown_s") or b.cooldown_s) if remaining_s is None else remaining_s)
        elif msg.get("what") == "closed":
            b.closed_elsewhere()

    async def _open_ones(self, r) -> None:
        """The breakers open somewhere in the fleet now (their keys are alive for the cooldown)."""
        keys = [k async for k in r.scan_iter(match=self.prefix + "*", count=200)]
        for k in keys:
            async with r.pipeline(transaction=False) as p:
                p.get(k)
                p.pttl(k)
                raw, ttl = await p.execute()
            if raw and ttl and ttl > 0:
                self._apply(raw, ttl / 1000.0)

    async def _listen(self) -> None:
        while True:
            while not self.state.up:
                await asyncio.sleep(LISTEN_POLL_S / 4)
            pubsub = self.state.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self.state.run("breaker.load", self._open_ones, timeout=5.0)
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_POLL_S)
                    if msg is not None and msg.get("type") == "message":
                        self._apply(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self.state.up:
                    self.state.trip("breaker.listen", e)
                await asyncio.sleep(LISTEN_POLL_S / 4)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass


def share_breakers(shared: dict, state: SharedState) -> SharedBreakers:
    """Share the engine's breakers (`shared["provider_breakers"]`) through `state`; on the loop."""
    from lynkr.providers.resilience import breakers_for
    got = shared.get("shared_breakers")
    if got is None:
        got = shared["shared_breakers"] = SharedBreakers(state, breakers_for(shared))
    return got
