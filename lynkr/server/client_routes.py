"""Routes of the client protocols. Each maps a path to a lynkr.wire module."""
from __future__ import annotations

from aiohttp import web

from ..wire import anthropic
from .handler import serve

__all__ = ["setup"]


async def messages(request: web.Request) -> web.StreamResponse:
    return await serve(request, anthropic)


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
