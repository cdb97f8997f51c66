"""The baseline: the least a Python proxy can do — aiohttp, orjson parse and serialise once,
pooled upstream connections, streams passed through chunk by chunk.

    python -m benchmarks.bare_proxy --port 9200 --upstream http://127.0.0.1:9100 [--workers N]

`--workers N` forks N processes that share the port (SO_REUSEPORT, as `lynkr run --workers N`
does), so the baseline gets the same number of processes as the proxy it is compared with.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal

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
    ap.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    args = ap.parse_args()
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    children = []
    for _ in range(1, args.workers):
        pid = os.fork()
        if pid == 0:
            _serve(args, reuse_port=True)
            os._exit(0)
        children.append(pid)
    try:            # run_app returns on SIGTERM; the workers are stopped with it
        _serve(args, reuse_port=args.workers > 1)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError:
                pass


def _serve(args, *, reuse_port: bool) -> None:
    web.run_app(make_app(args.upstream), host="127.0.0.1", port=args.port, access_log=None, print=None,
                reuse_port=reuse_port or None)


if __name__ == "__main__":
    main()
