"""CPU a request of aiohttp's HTTP client, against the least an HTTP/1.1 client on asyncio's
Protocol does: what the upstream call costs Lynkr (and the bare proxy) before any of our code.

    python -m benchmarks.client_cost [--body-kb 45] [--requests 2000] [--rounds 6]

Both post the same body to the fake upstream (tests/helpers/fake_upstream.py, in its own process) over
8 kept-alive connections and read its small JSON answer; CPU is this process's, uvloop's loop. The
aiohttp session is the one Lynkr's providers make (lynkr.providers.base.session_options), and
twice more with what could trim it (no cookie jar, a prebuilt URL). The Protocol client handles only
what this exchange needs (Content-Length answers): it is a floor, not a client.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import aiohttp
import yarl

from lynkr.providers.base import session_options

from .overhead import fake_upstream

CONNECTIONS = 8
HEADERS = {"content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01"}


def session(no_cookies: bool = False) -> aiohttp.ClientSession:
    kw = session_options({})
    if no_cookies:
        kw["cookie_jar"] = aiohttp.DummyCookieJar()
    return aiohttp.ClientSession(**kw)


class Floor(asyncio.Protocol):
    """One connection: write the request, wait for a Content-Length answer."""

    def __init__(self, head: bytes, body: bytes):
        self.head, self.body, self.buf, self.done = head, body, b"", None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        at = head.find(b"content-length:")
        size = int(head[at + 15:head.find(b"\r\n", at)])
        if len(self.buf) >= end + 4 + size:
            self.buf = self.buf[end + 4 + size:]
            self.done.set_result(None)

    async def post(self) -> None:
        self.done = asyncio.get_running_loop().create_future()
        self.transport.writelines([self.head, self.body])
        await self.done


async def measure(args, port: int) -> dict[str, list[float]]:
    url = f"http://127.0.0.1:{port}/v1/messages"
    body = b'{"x":"' + b"a" * (args.body_kb * 1024 - 8) + b'"}'
    loop = asyncio.get_running_loop()
    head = (f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
            + f"content-length: {len(body)}\r\n\r\n").encode()
    floors = [(await loop.create_connection(lambda: Floor(head, body), "127.0.0.1", port))[1]
              for _ in range(CONNECTIONS)]
    sessions = {"aiohttp (as Lynkr's providers)": (session(), url),
                "aiohttp, no cookie jar": (session(no_cookies=True), url),
                "aiohttp, prebuilt URL": (session(), yarl.URL(url))}

    async def aiohttp_post(s, u):
        async with s.post(u, data=body, headers=HEADERS) as r:
            await r.read()

    def load(name):
        if name == "Protocol floor":
            return lambda: asyncio.gather(*[f.post() for f in floors])
        s, u = sessions[name]
        return lambda: asyncio.gather(*[aiohttp_post(s, u) for _ in range(CONNECTIONS)])

    names = [*sessions, "Protocol floor"]
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds + 1):
        for n in names[r % len(names):] + names[:r % len(names)]:
            batch = load(n)
            t0 = time.process_time()
            for _ in range(args.requests // CONNECTIONS):
                await batch()
            if r:                                   # round 0 warms the pools up
                out[n].append((time.process_time() - t0) / args.requests * 1e6)
    for s, _ in sessions.values():
        await s.close()
    for f in floors:
        f.transport.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--body-kb", type=int, default=45, help="the body posted (45: default.yaml's upstream body "
                                                            "for the 62 KB request)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    up = fake_upstream()
    try:
        up.wait_ready()
        res = asyncio.run(measure(args, int(up.url.rsplit(":", 1)[1])))
    finally:
        up.stop()
    print(f"{args.body_kb} KB posted, {CONNECTIONS} connections, {args.rounds} rounds of {args.requests} requests "
          f"(median; each round)")
    for name, v in res.items():
        print(f"  {name:34s} {statistics.median(v):6.0f} CPU µs a request  ({' '.join(f'{a:.0f}' for a in v)})")


if __name__ == "__main__":
    sys.exit(main())
