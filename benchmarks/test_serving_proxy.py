"""What `greenai serve-proxy` adds: latency per request and throughput at 64 streams.

A fake OpenAI-compatible upstream (``tests/serving/fake_upstream.py``, aiohttp on uvloop, in
its own process) streams each completion as 32 chunks, 10 ms apart (a 100 tokens/s decode,
as a GPU server gives each of 64 streams); the proxy runs as ``greenai serve-proxy`` in its
own process; the clients (this process, one aiohttp session per target, kept alive across
rounds, on their own event loop) send 64 streamed requests at once, directly and through
the proxy, in interleaved paired rounds (:mod:`greenai.paired`: the order drawn per round,
outlying rounds re-measured). Per round: each target's median request latency (request
sent to last byte) and time to first chunk, and its throughput (chunks received / the
round's wall time). Reported (printed and in ``extra_info``): the median over rounds of
the per-round added p50 latency (proxy − direct) and the paired throughput ratio
(proxy / direct, geometric mean with its 95% interval).

A plain aiohttp relay (``tests/serving/plain_relay.py``: no metering, nothing parsed) runs
in the same rounds: the floor any Python relay costs on this machine. CPU time per chunk of
the relay and of the proxy (from /proc, summed over the rounds) isolates the proxy's own work.

Targets (issue 25): added p50 ≤ 1 ms, throughput loss ≤ 2%. Asserted, with a noise allowance
(added p50 ≤ 1 ms + ``NOISE_MS``, ratio ≥ 0.98 − ``NOISE_RATIO``), where the machine has
cores to spare (``QUIET_CPUS`` CPUs, load under a quarter of them): the clients, the relay
and the upstream each need about a fifth of a core at 6,400 chunks/s, and on a shared
2-core machine they queue behind each other and behind other jobs, so that even the plain
relay adds ~10 ms there. Always asserted: the proxy's CPU per chunk ≤ ``CPU_OVER_RELAY`` ×
the plain relay's. Measured figures with machine and date: docs/serving.md.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from greenai.paired import Protocol, Ratio, paired_ratio, run_rounds

aiohttp = pytest.importorskip("aiohttp")

ROOT = Path(__file__).resolve().parents[1]
STREAMS, CHUNKS, PAUSE_S = 64, 32, 0.01
TARGET_ADDED_MS, TARGET_RATIO = 1.0, 0.98
NOISE_MS, NOISE_RATIO = 1.0, 0.01
"""Allowance for a shared machine's noise on top of the targets (see the docstring)."""
CPU_OVER_RELAY = 1.6
"""The proxy's CPU time per chunk may be at most this many times a plain relay's: besides
relaying, its job samples the machine (a fixed cost), and each request is begun, ended and
settled (a cost per request, large per chunk at 32-token requests); measured ~1.4x."""
QUIET_CPUS = 8
"""With this many CPUs the clients, the upstream and the proxy each have cores to spare, and
the targets are asserted against direct requests too (not only against a plain relay)."""
PROTOCOL = Protocol(min_rounds=12, max_rounds=40, precision=0.005, budget_s=90.0, seed=25)
T = TypeVar("T")


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


class Clients:
    """64 streaming clients per round, on an event loop of their own (a thread)."""

    def __init__(self, urls: list[str]) -> None:
        try:
            import uvloop

            self.loop = uvloop.new_event_loop()
        except ImportError:
            self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.urls = urls
        self.sessions: list[Any] = self.call(self._open())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=300)

    async def _open(self) -> list[Any]:
        return [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False))
            for _ in self.urls
        ]

    async def _close(self) -> None:
        for s in self.sessions:
            await s.close()

    def close(self) -> None:
        self.call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()

    def round(self, target: int) -> tuple[list[float], list[float], float]:
        """(latencies, times to first chunk, chunks/s) of 64 streams at once to ``target``."""
        return self.call(self._round(target))

    async def _round(self, target: int) -> tuple[list[float], list[float], float]:
        url, s = self.urls[target], self.sessions[target]
        body = {
            "model": "m",
            "prompt": "p",
            "max_tokens": CHUNKS,
            "stream": True,
            "pause_s": PAUSE_S,
        }

        async def one() -> tuple[float, float]:
            t = time.perf_counter()
            first = 0.0
            n = 0
            async with s.post(url + "/v1/completions", json=body) as r:
                async for chunk in r.content.iter_any():
                    if not first:
                        first = time.perf_counter() - t
                    n += chunk.count(b"data: ")
            assert r.status == 200 and n == CHUNKS + 1, (r.status, n)  # all, and [DONE]
            return time.perf_counter() - t, first

        t0 = time.perf_counter()
        got = await asyncio.gather(*(one() for _ in range(STREAMS)))
        rate = STREAMS * CHUNKS / (time.perf_counter() - t0)
        return [g[0] for g in got], [g[1] for g in got], rate


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[tuple[str, int], ...]]:
    """Direct (the upstream), a plain aiohttp relay, and `greenai serve-proxy`: (URL, pid)."""
    up, px, pl = _port(), _port(), _port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GREENAI_NO_PROGRESS": "1"}
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "serving" / "fake_upstream.py"), str(up)], env=env
    )
    proxy = subprocess.Popen(
        [sys.executable, "-m", "greenai", "serve-proxy", "--upstream", f"http://127.0.0.1:{up}",
         "--port", str(px)],
        env=env,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    relay = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "serving" / "plain_relay.py"),
         f"http://127.0.0.1:{up}", str(pl)],
        env=env,
    )  # fmt: skip
    try:
        for port, p in ((up, upstream), (px, proxy), (pl, relay)):
            _wait(f"http://127.0.0.1:{port}", p)
        yield (
            (f"http://127.0.0.1:{up}", upstream.pid),
            (f"http://127.0.0.1:{pl}", relay.pid),
            (f"http://127.0.0.1:{px}", proxy.pid),
        )
    finally:
        for p in (proxy, relay, upstream):
            p.terminate()
            p.wait(timeout=30)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_proxy_overhead_at_64_streams(benchmark: Any, servers: tuple[tuple[str, int], ...]) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("CPU time per process is read from /proc (Linux)")
    clients = Clients([url for url, _ in servers])
    pids = [pid for _, pid in servers]
    try:
        for target in (0, 1, 2, 0, 1, 2):  # warm-up: connections opened, code paths hot
            clients.round(target)
        p50: dict[tuple[int, int], float] = {}
        ttfb: dict[tuple[int, int], float] = {}

        cpu: dict[tuple[int, int], float] = {}

        def measure(target: int, r: int) -> float:
            c0 = _cpu_s(pids[target])
            lat, first, rate = clients.round(target)
            cpu[target, r] = _cpu_s(pids[target]) - c0  # direct: the upstream's own
            p50[target, r] = statistics.median(lat)
            ttfb[target, r] = statistics.median(first)
            return rate

        rounds = benchmark.pedantic(
            lambda: run_rounds(measure, 3, PROTOCOL), rounds=1, iterations=1
        )
    finally:
        clients.close()
    kept = [r for r, k in enumerate(rounds.kept) if k]

    def added_ms(a: int, b: int, of: dict[tuple[int, int], float]) -> float:
        """Median over rounds of the per-round p50 difference b − a, in ms."""
        return statistics.median((of[b, r] - of[a, r]) * 1000 for r in kept)

    rates = [rounds.kept_values(v) for v in range(3)]
    vs_direct = paired_ratio(rates[0], rates[2], PROTOCOL.outlier_mads)
    relay_vs_direct = paired_ratio(rates[0], rates[1], PROTOCOL.outlier_mads)
    vs_relay = paired_ratio(rates[1], rates[2], PROTOCOL.outlier_mads)
    p50_ms = [statistics.median(p50[v, r] for r in kept) * 1000 for v in range(3)]
    added = {"relay": added_ms(0, 1, p50), "proxy": added_ms(0, 2, p50)}
    over_relay = added_ms(1, 2, p50)
    first = {"relay": added_ms(0, 1, ttfb), "proxy": added_ms(0, 2, ttfb)}
    chunks = len(kept) * STREAMS * CHUNKS
    us_per_chunk = [sum(cpu[v, r] for r in kept) / chunks * 1e6 for v in (1, 2)]
    benchmark.extra_info.update(
        cpu_relay_us_per_chunk=us_per_chunk[0],
        cpu_proxy_us_per_chunk=us_per_chunk[1],
        streams=STREAMS,
        rounds=len(kept),
        remeasured=rounds.remeasured,
        stopped_by=rounds.stopped_by,
        cpus=os.cpu_count(),
        load_1min=os.getloadavg()[0],
        p50_direct_ms=p50_ms[0],
        p50_relay_ms=p50_ms[1],
        p50_proxy_ms=p50_ms[2],
        added_p50_ms=added["proxy"],
        added_p50_over_relay_ms=over_relay,
        added_first_chunk_ms=first["proxy"],
        throughput_ratio=vs_direct.value,
        throughput_ratio_vs_relay=vs_relay.value,
    )
    rows = [
        ("p50 latency, ms", *(f"{x:.1f}" for x in p50_ms), ""),
        ("  added to direct, ms", "", f"{added['relay']:+.2f}", f"{added['proxy']:+.2f}", "<= 1"),
        ("  added to relay, ms", "", "", f"{over_relay:+.2f}", "<= 1"),
        ("p50 first chunk added, ms", "", f"{first['relay']:+.2f}", f"{first['proxy']:+.2f}", ""),
        ("chunks/s (median)", *(f"{statistics.median(r):.0f}" for r in rates), ""),
        ("  / direct (95% CI)", "", _ci(relay_vs_direct), _ci(vs_direct), ">= 0.98"),
        ("  / relay (95% CI)", "", "", _ci(vs_relay), ">= 0.98"),
        ("CPU per chunk, us", "", f"{us_per_chunk[0]:.1f}", f"{us_per_chunk[1]:.1f}", ""),
    ]
    print(
        f"\n{STREAMS} streams x {CHUNKS} chunks every {PAUSE_S * 1000:g} ms; {len(kept)} paired"
        f" rounds ({rounds.remeasured} re-measured, stopped by {rounds.stopped_by});"
        f" {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    for row in [("", "direct", "plain relay", "serve-proxy", "target"), *rows]:
        print(f"{row[0]:28}{row[1]:>12}{row[2]:>20}{row[3]:>20}{row[4]:>10}")
    # The proxy's own work (metering, token counting, headers, its job's sampling and
    # settling) on top of the plainest aiohttp relay, in CPU time (what a loaded machine's
    # latency swings do not blur): at most CPU_OVER_RELAY more per chunk.
    assert us_per_chunk[1] <= us_per_chunk[0] * CPU_OVER_RELAY, us_per_chunk
    if (os.cpu_count() or 1) >= QUIET_CPUS and os.getloadavg()[0] < QUIET_CPUS / 4:
        # cores to spare for the clients, the upstream and the proxy: the targets themselves
        assert added["proxy"] <= TARGET_ADDED_MS + NOISE_MS, f"added p50 {added['proxy']:.2f} ms"
        assert vs_direct.value >= TARGET_RATIO - NOISE_RATIO, f"throughput {vs_direct.value:.4f}"


def _ci(r: Ratio) -> str:
    return f"{r.value:.3f} ({r.low:.3f}-{r.high:.3f})"
