"""Response interceptors (Exchange.interceptors): a stage that adds something to the request the
client did not send — a tool the proxy answers itself, like crush's `lynkr_expand` — installs a hook
that sees the upstream's response before the client does, and may call the same upstream again."""
from __future__ import annotations

from lynkr.exchange import Exchange, Response

__all__ = ["intercept"]


async def intercept(x: Exchange, response: Response, resend) -> Response:
    """`resend(request_body) -> Response` sends another body to the same provider and model."""
    for hook in x.interceptors:
        response = await hook(x, response, resend)
    return response
