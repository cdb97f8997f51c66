"""The provider adapter interface and what every adapter shares (pooled aiohttp sessions)."""
from __future__ import annotations

from typing import ClassVar

import aiohttp

from ..exchange import Exchange, Response

__all__ = ["Provider"]


class Provider:
    """One upstream from the pipeline's `providers:` map.

    `send` turns the canonical request into the upstream's wire format and returns a Response
    whose `message` or `events` are canonical (Anthropic-shaped). Failures raise ProxyError
    with the upstream's status and wording, so provider_call and fallback can decide.
    """

    kind: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ("base_url",)   # config keys that must be non-empty

    def __init__(self, name: str, config: dict):
        self.name = name
        self.config = config
        self.base_url = (config.get("base_url") or "").rstrip("/")
        self.api_key = config.get("api_key") or None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def check(cls, name: str, config: dict) -> list[tuple[str, str]]:
        """Problems with this provider's config, as (key, message) pairs; empty when fine."""
        return [(key, f"provider '{name}' ({config.get('kind')}) needs `{key}`")
                for key in cls.required if not config.get(key)]

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeouts = self.config.get("timeouts") or {}
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=int(self.config.get("max_connections", 256)),
                                               keepalive_timeout=30, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None, connect=timeouts.get("connect", 10),
                                              sock_read=timeouts.get("read", 600)),
                auto_decompress=True,
            )
        return self._session

    async def send(self, x: Exchange, model: str) -> Response:  # pragma: no cover - interface
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.base_url}>"
