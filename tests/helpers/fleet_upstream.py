"""An Anthropic Messages upstream for a fleet of replicas, in its own process:

    python -m tests.helpers.fleet_upstream PORT

Each replica's provider points at its own prefix (`base_url: http://127.0.0.1:PORT/r1`), so the
upstream knows which replica sent a request (the pipeline file is the same; only the replica's
environment differs). Answers speak the real wire format (JSON, or SSE with `event:` lines and
cumulative usage, tests/helpers/anthropic_upstream.py) and are numbered with their replica —
"Answer 7 (r0)" — so a cache hit on r1 shows whose answer it replays.

    POST /hold      new requests wait at the upstream until /release (they count as `waiting`)
    POST /release   let every waiting request answer; new ones pass
    GET  /stats     {"arrived": {replica: n}, "waiting": {replica: n}, "answered": {replica: n}}

Holding is how a test counts a replica's in-flight requests exactly: hold, wait until every
client's request is waiting here, then `waiting[replica]` is what that replica has in flight.
"""
from __future__ import annotations

import asyncio
import itertools
import sys
from collections import Counter

import orjson
from aiohttp import web

from tests.helpers.anthropic_upstream import sse, text_message


class FleetUpstream:
    def __init__(self):
        self.arrived: Counter = Counter()
        self.waiting: Counter = Counter()
        self.answered: Counter = Counter()
        self.gate = asyncio.Event()
        self.gate.set()
        self.numbers = itertools.count(1)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        replica = request.match_info["replica"]
        body = orjson.loads(await request.read())
        self.arrived[replica] += 1
        if not self.gate.is_set():
            self.waiting[replica] += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting[replica] -= 1
        msg = text_message(f"Answer {next(self.numbers)} ({replica}): TCP is connection-oriented, UDP is not.",
                           model=str(body.get("model") or "claude-test"))
        if not body.get("stream"):
            resp = web.Response(body=orjson.dumps(msg), content_type="application/json")
        else:
            resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
            await resp.prepare(request)
            for chunk in sse(msg):
                await resp.write(chunk)
            await resp.write_eof()
        self.answered[replica] += 1
        return resp

    async def hold(self, request: web.Request) -> web.Response:
        self.gate.clear()
        return web.json_response({})

    async def release(self, request: web.Request) -> web.Response:
        self.gate.set()
        return web.json_response({})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"arrived": dict(self.arrived), "waiting": dict(self.waiting),
                                  "answered": dict(self.answered)})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{replica}/v1/messages", self.messages)
        app.router.add_post("/hold", self.hold)
        app.router.add_post("/release", self.release)
        app.router.add_get("/stats", self.stats)
        return app


def main(port: int) -> None:
    web.run_app(FleetUpstream().app(), host="127.0.0.1", port=port, access_log=None, print=None,
                shutdown_timeout=0.5, handle_signals=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
