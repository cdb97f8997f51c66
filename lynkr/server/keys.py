"""Client keys at the door: who is calling (`keys:`, `server.api_keys`), and whether their key and
team are under their limits (lynkr.teams.ledger, shared by the workers of the host).

A client presents its key as its protocol does: `x-api-key` (Anthropic) or `Authorization:
Bearer` (OpenAI, Claude Code's auth token). No key, an unknown one, or two different ones is a
401 in the client's protocol. Only the key's name travels further (telemetry, metrics, logs).
A request admitted under limits is released when its answer has ended (the stream included):
its provider-reported tokens and their USD price (the pipeline's prices) are charged then.
"""
from __future__ import annotations

import hashlib
from collections.abc import Awaitable

from lynkr.config.keys import ClientKey, client_keys, team_limits
from lynkr.errors import ProxyError
from lynkr.storage.shared_state import Unavailable
from lynkr.teams import ledger
from lynkr.teams import shared as shared_ledger
from lynkr.telemetry.pricing import PriceTable, usd_of

__all__ = ["KeyBook", "identify", "admit_shared", "release_held", "charge", "Held"]

_TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


class KeyBook:
    """One pipeline's keys, digested once per load."""

    def __init__(self, config: dict):
        self.by_digest: dict[bytes, ClientKey] = {k.digest: k for k in client_keys(config)}
        self.scopes: dict[str, list] = {}      # key name -> ledger scopes, [] when nothing is limited
        self.names: dict[str, list] = {}       # key name -> its scopes without limits (what a release names)
        for k in self.by_digest.values():
            scopes = [["key", k.name, k.limits]] if k.limits else []
            t = team_limits(config, k.team)
            if t:
                scopes.append(["team", k.team, t])
            self.scopes[k.name] = scopes
            self.names[k.name] = [[kind, name] for kind, name, _ in scopes]
        self._config = config
        self._prices: dict[int, tuple[dict, PriceTable]] = {}     # id(config) -> (config, its prices)
        self._price_of: dict[tuple, dict | None] = {}    # (id(config), model, provider) -> price

    @property
    def enabled(self) -> bool:
        return bool(self.by_digest)

    def prices(self, config: dict | None = None) -> PriceTable:
        """The prices of the pipeline that served (a folder's pipelines each have their `models:`),
        built on its first charge: the catalogue is not free to load."""
        config = self._config if config is None else config
        found = self._prices.get(id(config))
        if found is None or found[0] is not config:
            if len(self._prices) >= 16:   # a folder's pipelines, reloaded: the old configs' go
                self._prices.clear()
                self._price_of.clear()
            found = self._prices[id(config)] = (config, PriceTable(config))
        return found[1]

    def price(self, config: dict | None, model: str | None, provider: str | None) -> dict | None:
        """`prices(config).price(model, provider)`, remembered: a charge is on every limited request."""
        memo = (id(config), model, provider)
        try:
            return self._price_of[memo]
        except KeyError:
            pass
        price, _ = self.prices(config).price(model, provider)
        if len(self._price_of) >= 4096:       # models are few; a client inventing names is not kept
            self._price_of.clear()
        self._price_of[memo] = price
        return price


def presented(headers) -> tuple[str | None, bool]:
    """(the key the client sent, whether it sent two different ones)."""
    auth = headers.get("authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    x_key = headers.get("x-api-key") or headers.get("api-key")
    if bearer and x_key and bearer != x_key:
        return None, True
    return bearer or x_key or None, False


def identify(book: KeyBook, headers) -> ClientKey:
    """The client's key, or the 401 ProxyError to answer with."""
    key, two = presented(headers)
    if two:
        raise ProxyError(401, "two different client keys were sent (x-api-key and Authorization: Bearer); send one",
                         retryable=False)
    if not key:
        raise ProxyError(401, "this Lynkr requires a client key: send it as x-api-key or Authorization: Bearer",
                         retryable=False)
    found = book.by_digest.get(hashlib.sha256(key.encode()).digest())
    if found is None:
        raise ProxyError(401, "a valid client key is required: send it as x-api-key or Authorization: Bearer",
                         retryable=False)
    return found


class Held:
    """An admitted request's place in the counters: its scopes, and where it was counted (the
    Redis member id, or None for this host's counters) so the release goes to the same place."""

    __slots__ = ("scopes", "member")

    def __init__(self, scopes: list, member: str | None):
        self.scopes, self.member = scopes, member


async def admit_shared(book: KeyBook, key: ClientKey, state) -> Held | None:
    """Count the request in Redis when `state` (state.redis) is set and answers, else on this host
    (lynkr.teams.ledger: in this process, or over the worker's channel to the writer process).
    Raises the refusal as a ProxyError."""
    scopes = book.scopes.get(key.name)
    if not scopes:
        return None
    names = book.names[key.name]
    if state is not None:
        try:
            refused, member = await shared_ledger.admit(state, scopes)
        except Unavailable:
            pass                      # Redis down: this host's counters, until it answers again
        else:
            if refused is not None:
                raise _refusal(refused)
            return Held(names, member)
    refused = await ledger.admit_async(scopes)
    if refused is not None:
        raise _refusal(refused)
    return Held(names, None)


def release_held(book: KeyBook, held: Held, x, state) -> Awaitable[None] | None:
    """End `held` where it was counted and charge its answer. On this host that is done before
    this returns (no await: nothing the client sends next is read before it); in Redis it is the
    awaitable returned."""
    tokens, usd = charge(book, x)
    if held.member is not None and state is not None:
        return _release_in_redis(held, tokens, usd, state)
    ledger.release_soon(held.scopes, tokens, usd)
    return None


async def _release_in_redis(held: Held, tokens: int, usd: float, state) -> None:
    try:
        await shared_ledger.release(state, held.scopes, held.member, tokens, usd)
    except Unavailable:
        # Its in-flight lease ends by itself (LEASE_S); the charge goes to this host's counters.
        ledger.release_soon(held.scopes, tokens, usd, in_flight=False)


def _refusal(r: dict) -> ProxyError:
    if r["status"] == 429:
        return ProxyError(429, r["message"], retry_after=r["retry_after"], retryable=True, code="rate_limit_exceeded")
    # A budget: waiting seconds does not help, so no retry (x-should-retry: false) and a sentence
    # a person reads in their tool ("key alice: daily budget $20.00 reached, resets 00:00 UTC").
    return ProxyError(402, r["message"], type="billing_error", retryable=False, code="insufficient_quota")


def charge(book: KeyBook, x) -> tuple[int, float]:
    """The answer's provider-reported tokens and their USD price."""
    tokens, usd = 0, 0.0
    resp = getattr(x, "response", None) if x is not None else None
    usage = resp.usage if resp is not None else None
    if usage:
        tokens = sum(v for k in _TOKEN_KINDS if isinstance(v := usage.get(k), int))
        route = x.route
        if route is not None:
            model = x.request.get("model") if route.model == "*" else route.model
            served = x.pipeline.config if x.pipeline is not None else None
            usd = usd_of(usage, book.price(served, model, route.provider))
    return tokens, usd
