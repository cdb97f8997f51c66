"""Anthropic Messages upstreams: Anthropic, Azure Anthropic (Foundry) and any Anthropic-compatible
endpoint. The canonical form *is* the Messages shape, so the body passes through with only what
stages changed."""
from __future__ import annotations

import time

import aiohttp
import orjson

from ..errors import ProxyError
from ..exchange import Exchange, Response
from ..wire.sse import iter_sse
from .base import Provider

__all__ = ["AnthropicProvider"]

_FORWARD = ("anthropic-beta", "anthropic-version")


class AnthropicProvider(Provider):
    kind = "anthropic"

    def _headers(self, x: Exchange) -> dict:
        h = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        for k in _FORWARD:
            v = x.headers.get(k)
            if v:
                h[k] = v
        if self.api_key:
            h["x-api-key"] = self.api_key
        return h

    async def send(self, x: Exchange, model: str) -> Response:
        body = dict(x.request)
        body["model"] = model
        x.upstream_request = body
        url = self.base_url + "/v1/messages"
        try:
            resp = await self.session.post(url, data=orjson.dumps(body), headers=self._headers(x))
        except (aiohttp.ClientError, OSError) as e:
            raise ProxyError(502, f"cannot reach provider '{self.name}': {e}", provider=self.name) from None
        first = time.perf_counter()
        if resp.status >= 400:
            raw = await resp.read()
            resp.release()
            raise _upstream_error(self.name, resp.status, raw, resp.headers)
        if body.get("stream"):
            return Response(events=_events(resp), first_byte_at=first)
        data = orjson.loads(await resp.read())
        return Response(message=data, usage=data.get("usage") or {}, first_byte_at=first, upstream_done_at=time.perf_counter())


async def _events(resp: aiohttp.ClientResponse):
    try:
        async for event, data in iter_sse(resp.content):
            if not data:
                continue
            yield orjson.loads(data)
    finally:
        resp.release()


def _upstream_error(provider: str, status: int, raw: bytes, headers) -> ProxyError:
    message = raw.decode("utf-8", "replace")[:2000]
    etype = None
    try:
        data = orjson.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            message = err.get("message") or message
            etype = err.get("type")
    except orjson.JSONDecodeError:
        pass
    retry_after = headers.get("retry-after")
    try:
        ra = float(retry_after) if retry_after else None
    except ValueError:
        ra = None
    return ProxyError(status, message, type=etype, retry_after=ra, provider=provider)
