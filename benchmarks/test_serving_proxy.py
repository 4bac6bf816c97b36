"""What `greenai serve-proxy` adds: latency per request and throughput at 64 streams.

A fake OpenAI-compatible upstream (its own process) streams each completion as 32 chunks,
10 ms apart (a 100 tokens/s decode); 64 clients stream at once, directly and through the
proxy (its own process, as `greenai serve-proxy`), in alternating rounds. Recorded in
``extra_info``: the median request latency of each, the added p50 (target ≤ 1 ms) and the
throughput ratio (target loss ≤ 2%). Only that every stream arrives whole is asserted: a
shared 2-core machine runs the clients, the proxy and the upstream on the same cores, and
its timings swing by tens of ms under other load (see docs/serving.md for figures).
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")

ROOT = Path(__file__).resolve().parents[1]
STREAMS, CHUNKS, PAUSE_S, ROUNDS = 64, 32, 0.01, 3


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"{proc.args} exited"
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} did not answer"
            time.sleep(0.1)


async def _round(url: str) -> tuple[list[float], float]:
    body = {"model": "m", "prompt": "p", "max_tokens": CHUNKS, "stream": True, "pause_s": PAUSE_S}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def one() -> float:
            t = time.perf_counter()
            async with s.post(url + "/v1/completions", json=body) as r:
                data = await r.read()
            assert r.status == 200 and data.count(b"data: ") == CHUNKS + 1  # all, and [DONE]
            return time.perf_counter() - t

        t0 = time.perf_counter()
        lat = await asyncio.gather(*(one() for _ in range(STREAMS)))
        return list(lat), STREAMS * CHUNKS / (time.perf_counter() - t0)


def test_proxy_overhead_at_64_streams(benchmark: Any) -> None:
    up, px = _port(), _port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GREENAI_NO_PROGRESS": "1"}
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "serving" / "fake_upstream.py"), str(up)], env=env
    )
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "greenai",
            "serve-proxy",
            "--upstream",
            f"http://127.0.0.1:{up}",
            "--port",
            str(px),
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(f"http://127.0.0.1:{up}", upstream)
        _wait(f"http://127.0.0.1:{px}", proxy)
        direct: list[float] = []
        via: list[float] = []
        rates: dict[str, list[float]] = {"direct": [], "proxy": []}

        def rounds() -> None:
            for _ in range(ROUNDS):
                for name, port, into in (("direct", up, direct), ("proxy", px, via)):
                    lat, rate = asyncio.run(_round(f"http://127.0.0.1:{port}"))
                    into.extend(lat)
                    rates[name].append(rate)

        benchmark.pedantic(rounds, rounds=1, iterations=1)
        p50_direct, p50_proxy = statistics.median(direct), statistics.median(via)
        added_ms = (p50_proxy - p50_direct) * 1000
        ratio = statistics.median(rates["proxy"]) / statistics.median(rates["direct"])
        benchmark.extra_info.update(
            p50_direct_s=p50_direct,
            p50_proxy_s=p50_proxy,
            added_p50_ms=added_ms,
            throughput_ratio=ratio,
            streams=STREAMS,
        )
        print(f"\nadded p50 {added_ms:.2f} ms; throughput proxy/direct {ratio:.4f}")
        # no timing is asserted (a shared machine is too noisy; docs/serving.md has figures):
        # every stream arrived whole, through the proxy as directly
        assert len(via) == len(direct) == ROUNDS * STREAMS
    finally:
        for p in (proxy, upstream):
            p.terminate()
            p.wait(timeout=30)
