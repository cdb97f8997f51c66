"""An Exchange's response as a client receives it: one aiohttp route calling a wire module's
`render`, read by a real client over HTTP."""
from __future__ import annotations

import aiohttp
from aiohttp import web

from tests.conftest import start_app


async def rendered(x, proto, read):
    """(status, read(response)) for `proto.render(request, x)` served once."""
    app = web.Application()

    async def h(request):
        return await proto.render(request, x)
    app.router.add_get("/", h)
    runner, url = await start_app(app)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url) as r:
                return r.status, await read(r)
    finally:
        await runner.cleanup()
