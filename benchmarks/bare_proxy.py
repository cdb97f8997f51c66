"""The baseline: the least a Python proxy can do — aiohttp, orjson parse and serialise once,
pooled upstream connections, streams passed through chunk by chunk.

    python -m benchmarks.bare_proxy --port 9200 --upstream http://127.0.0.1:9100
"""
from __future__ import annotations

import argparse
import asyncio

import aiohttp
import orjson
from aiohttp import web


def make_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=256 * 1024 * 1024)

    async def startup(app):
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

    async def cleanup(app):
        await app["session"].close()

    async def messages(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        async with app["session"].post(upstream + "/v1/messages", data=orjson.dumps(body),
                                       headers={"content-type": "application/json"}) as up:
            if body.get("stream"):
                resp = web.StreamResponse(status=up.status, headers={"content-type": "text/event-stream"})
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            return web.Response(status=up.status, body=await up.read(), content_type="application/json")

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_post("/v1/messages", messages)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9200)
    ap.add_argument("--upstream", default="http://127.0.0.1:9100")
    args = ap.parse_args()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(make_app(args.upstream), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
