"""A small OpenAI-compatible upstream for the proxy's tests and benchmark (aiohttp)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from aiohttp import web


def completion(n: int, usage: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "cmpl-1",
        "object": "text_completion",
        "choices": [{"index": 0, "text": "x" * n, "finish_reason": "length"}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
    return body


def make_app(delay_s: float = 0.0) -> web.Application:
    """Routes: /v1/completions (json or SSE by ``stream``; ``max_tokens`` chunks), /slow,
    /fail (500), /never (no answer), /v1/models."""

    async def completions(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "bad json"}, status=400)
        n = int(body.get("max_tokens", 4))
        pause = float(body.get("pause_s", delay_s))
        if not body.get("stream"):
            await asyncio.sleep(pause * n)
            return web.json_response(completion(n, usage=not body.get("no_usage")))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(n):
            await asyncio.sleep(pause)
            chunk = {"choices": [{"index": 0, "text": f"t{i}"}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if (body.get("stream_options") or {}).get("include_usage"):
            u = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": n}}
            await resp.write(f"data: {json.dumps(u)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "fake"}]})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/fail", fail)
    app.router.add_post("/v1/never", never)
    return app


def spawn(delay_s: float = 0.0) -> tuple[subprocess.Popen[bytes], str]:
    """This upstream in its own process (for a command that runs its own event loop)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, str(port), str(delay_s)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


if __name__ == "__main__":  # python fake_upstream.py PORT [DELAY_S]: serve until killed
    try:  # uvloop where installed: the benchmark's upstream must not be the slow part
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        make_app(float(sys.argv[2]) if len(sys.argv) > 2 else 0.0),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        print=None,
        loop=loop,
    )
