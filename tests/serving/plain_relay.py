"""The plainest aiohttp relay: the floor any Python proxy costs, for the proxy's benchmark.

Forwards every request to the upstream and streams the answer back chunk by chunk, with
none of the proxy's work (no metering, no token counting, no headers filtered).
``python plain_relay.py UPSTREAM_URL PORT``: serve until killed (uvloop where installed).
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from aiohttp import web


def make_app(upstream: str) -> web.Application:
    async def startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1024), auto_decompress=False
        )

    async def cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        url = upstream + str(request.rel_url)
        async with app["session"].request(request.method, url, data=body, headers=headers) as up:
            ctype = up.headers.get("content-type", "application/octet-stream")
            resp = web.StreamResponse(status=up.status, headers={"content-type": ctype})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    app = web.Application()
    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


if __name__ == "__main__":
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        make_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), print=None, loop=loop
    )
