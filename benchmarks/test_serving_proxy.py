"""What `greenai serve-proxy` adds: latency per request and throughput at 64 concurrent streams.

A fake OpenAI-compatible upstream (``tests/serving/fake_upstream.py``, aiohttp on uvloop, in
its own process) streams each completion as 32 chunks, 10 ms apart (a 100 tokens/s decode,
as a GPU server gives each of 64 streams). Three targets are measured: direct (the
upstream), a plain aiohttp relay (``tests/serving/plain_relay.py``: no metering, nothing
parsed; the floor any Python relay costs here) and ``greenai serve-proxy``, each in its own
process. The clients run in this process (aiohttp on their own event loop, one session per
target, connections kept alive across rounds).

**Primary: closed loop, 64 streams in flight.** What "concurrency 64" means in serving
benchmarks (vLLM's, ML.ENERGY's): 64 clients, each sending its next request as soon as its
previous one ends, so 64 requests are in flight at any time and their arrivals spread over
a request's duration. Per target and round: the 64 client loops start staggered over one
request's duration, run ``WARMUP_S`` (excluded), then a steady window of ``WINDOW_S``:
the p50 latency (request sent to last byte) and time to first chunk of the requests that
start in the window, and the chunks received per second in the window; CPU time of the
relay/proxy process per chunk it relayed (from /proc). Targets in interleaved paired rounds
(:mod:`greenai.paired`, order drawn per round). Reported: the median over rounds of the
per-round added p50 (target − direct) and the paired throughput ratio (target / direct,
geometric mean with its 95% interval).

**Second line: a burst of 64.** All 64 requests sent in the same instant (a thundering
herd). A single-threaded relay handles the 64 arrivals one after another (~0.3 ms each), so
the median request waits behind ~32 others: +10-15 ms on a 2-core VM for the plain relay
and the proxy alike. Printed for what a herd costs; not the target.

Asserted:

* always: the proxy's CPU per chunk ≤ ``CPU_OVER_RELAY`` × the plain relay's (its own
  work: metering, token counting, headers, its job's sampling and settling), in CPU time,
  which a loaded machine's latency swings do not blur;
* the targets of issue 25, closed loop, where the machine is quiet (others used under
  ``QUIET_OTHERS_CPUS`` cores during the rounds, from /proc/stat less our four processes,
  and our processes had ≥ 2 CPUs): throughput ratio ≥ 0.98 − an allowance, and added p50 ≤ 1
  ms + an allowance: against the plain relay always (what metering adds to a relay), against
  direct where the machine has at least ``OWN_CORES_FOR_HOP`` CPUs. On fewer, the clients,
  the upstream and the relay share the cores, and the hop itself (any Python relay's, the
  plain one's too) costs up to 1-3 ms of p50 and up to 6% of throughput there
  (docs/serving.md; CI's 2 cores, 2026-12-07: the plain relay 0.944 of direct, the proxy
  0.994 of the relay): printed, not asserted. The allowances are the run's own noise,
  bounded: an added p50 is the median over the rounds of per-round differences of two
  medians, and its standard error is measured from their scatter (1.2533 × the scaled MAD /
  √rounds, printed as ±): twice it (about a 95% one-sided bound), at least ``MIN_NOISE_MS``
  and at most ``MAX_NOISE_MS``; the throughput ratio's allowance is the half-width of its
  paired 95% interval, at most ``MAX_NOISE_RATIO``. So a run fails when its own data show
  the target missed, and the caps keep a noisy run able to fail (an added 2 ms, a 3% loss).
  On a busy machine the targets are printed, not asserted: others' CPU bursts then add
  milliseconds to any relay (the plain one as much as the proxy: docs/serving.md), and a
  2-core machine running other jobs cannot tell a relay's cost from the queue.

Measured figures with machine, date and load: docs/serving.md.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from greenai.paired import Protocol, Ratio, paired_ratio, run_rounds

aiohttp = pytest.importorskip("aiohttp")

ROOT = Path(__file__).resolve().parents[1]
STREAMS, CHUNKS, PAUSE_S = 64, 32, 0.01
REQUEST_S = CHUNKS * PAUSE_S
"""A request's duration, about (the clients' starts are staggered over it)."""
WARMUP_S, WINDOW_S = 0.5, 2.0
"""Per target and round: closed-loop warm-up after the staggered start (excluded), then the
steady window measured."""
TARGET_ADDED_MS, TARGET_RATIO = 1.0, 0.98
MIN_NOISE_MS, MAX_NOISE_MS, MAX_NOISE_RATIO = 0.1, 1.0, 0.01
"""Bounds of the allowances for noise on top of the targets (see the module's docstring)."""
CPU_OVER_RELAY = 1.4
"""The proxy's CPU time per chunk may be at most this many times a plain relay's: measured
1.15-1.30x on a shared 2-core VM (2026-12-06, ten runs, quiet to busy), 1.34x before its
hot path was trimmed; the margin is for a loaded machine's scatter."""
QUIET_OTHERS_CPUS = 0.3
"""Cores other processes may have used during the rounds for the targets to be asserted."""
OWN_CORES_FOR_HOP = 4
"""CPUs from which the added p50 over direct is asserted: the clients, the upstream and the
relay each get a core (on a quiet 2-vCPU VM the plain relay's hop alone added +1.70 ± 0.82
and −0.17 ± 0.60 ms, the proxy +2.27 ± 1.48 and +1.08 ± 0.70 ms, the proxy over the relay
−0.27 ± 0.78 and +0.57 ± 1.28 ms; 2026-12-06)."""
PROTOCOL = Protocol(min_rounds=8, max_rounds=20, precision=0.003, budget_s=100.0, seed=25)
BURST = Protocol(min_rounds=6, max_rounds=12, precision=0.01, budget_s=15.0, seed=26)
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


@dataclass
class Window:
    """One target's figures in one round."""

    latency_s: list[float]
    first_s: list[float]
    rate: float
    """Chunks received per second (closed loop: in the steady window; burst: the round's)."""
    chunks: int
    """Chunks received in the whole phase (for CPU per chunk)."""


class Clients:
    """Streaming clients on an event loop of their own (a thread), one session per target."""

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
        self.body = {
            "model": "m",
            "prompt": "p",
            "max_tokens": CHUNKS,
            "stream": True,
            "pause_s": PAUSE_S,
        }

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

    async def _one(self, target: int, count: list[int]) -> tuple[float, float]:
        """One streamed request: (latency, time to first chunk); chunks added to ``count``."""
        url, s = self.urls[target], self.sessions[target]
        t = time.perf_counter()
        first = 0.0
        n = 0
        async with s.post(url + "/v1/completions", json=self.body) as r:
            async for chunk in r.content.iter_any():
                if not first:
                    first = time.perf_counter() - t
                k = chunk.count(b"data: ")
                n += k
                count[0] += k
        assert r.status == 200 and n == CHUNKS + 1, (r.status, n)  # all, and [DONE]
        return time.perf_counter() - t, first

    def closed(self, target: int) -> Window:
        """64 closed-loop streams to ``target``: the steady window's figures."""
        return self.call(self._closed(target))

    async def _closed(self, target: int) -> Window:
        count = [0]
        start = time.perf_counter()
        w0 = start + REQUEST_S + WARMUP_S
        w1 = w0 + WINDOW_S
        lat: list[float] = []
        first: list[float] = []

        async def client(i: int) -> None:
            await asyncio.sleep(i * REQUEST_S / STREAMS)
            while (t := time.perf_counter()) < w1:
                got = await self._one(target, count)
                if t >= w0:
                    lat.append(got[0])
                    first.append(got[1])

        async def window() -> tuple[int, float]:
            await asyncio.sleep(w0 - time.perf_counter())
            c0, t0 = count[0], time.perf_counter()
            await asyncio.sleep(w1 - time.perf_counter())
            return count[0] - c0, time.perf_counter() - t0

        got = await asyncio.gather(window(), *(client(i) for i in range(STREAMS)))
        n, dt = got[0]
        assert isinstance(n, int) and isinstance(dt, float)
        return Window(lat, first, n / dt, count[0])

    def burst(self, target: int) -> Window:
        """64 streams sent to ``target`` in the same instant."""
        return self.call(self._burst(target))

    async def _burst(self, target: int) -> Window:
        count = [0]
        t0 = time.perf_counter()
        got = await asyncio.gather(*(self._one(target, count) for _ in range(STREAMS)))
        rate = STREAMS * CHUNKS / (time.perf_counter() - t0)
        return Window([g[0] for g in got], [g[1] for g in got], rate, count[0])


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


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat)."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)  # idle + iowait
    return (sum(cpu[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    """The summary of one kind of round (closed loop or burst) over its kept rounds."""

    p50_ms: list[float]
    added_ms: dict[str, tuple[float, float]]
    """Added p50 (ms) and its standard error, by target ("relay", "proxy")."""
    over_relay_ms: tuple[float, float]
    first_ms: dict[str, tuple[float, float]]
    rates: list[list[float]]
    vs_direct: Ratio
    relay_vs_direct: Ratio
    vs_relay: Ratio
    us_per_chunk: list[float]
    rounds: int
    remeasured: int
    stopped_by: str


def _run(protocol: Protocol, take: Any, pids: list[int]) -> Figures:
    p50: dict[tuple[int, int], float] = {}
    ttfb: dict[tuple[int, int], float] = {}
    cpu: dict[tuple[int, int], float] = {}
    chunks: dict[tuple[int, int], int] = {}

    def measure(target: int, r: int) -> float:
        c0 = _cpu_s(pids[target])
        w: Window = take(target)
        cpu[target, r] = _cpu_s(pids[target]) - c0  # direct: the upstream's own
        chunks[target, r] = w.chunks
        p50[target, r] = statistics.median(w.latency_s)
        ttfb[target, r] = statistics.median(w.first_s)
        return w.rate

    rounds = run_rounds(measure, 3, protocol)
    kept = [r for r, k in enumerate(rounds.kept) if k]

    def added(a: int, b: int, of: dict[tuple[int, int], float]) -> tuple[float, float]:
        """Median over rounds of the per-round difference b − a, and its standard error (ms).

        The error: 1.2533 × the scaled MAD / √rounds (the median's, for normal scatter).
        """
        d = [(of[b, r] - of[a, r]) * 1000 for r in kept]
        mid = statistics.median(d)
        mad = statistics.median(abs(x - mid) for x in d) * 1.4826
        return mid, 1.2533 * mad / len(d) ** 0.5

    rates = [rounds.kept_values(v) for v in range(3)]
    return Figures(
        p50_ms=[statistics.median(p50[v, r] for r in kept) * 1000 for v in range(3)],
        added_ms={"relay": added(0, 1, p50), "proxy": added(0, 2, p50)},
        over_relay_ms=added(1, 2, p50),
        first_ms={"relay": added(0, 1, ttfb), "proxy": added(0, 2, ttfb)},
        rates=rates,
        vs_direct=paired_ratio(rates[0], rates[2], protocol.outlier_mads),
        relay_vs_direct=paired_ratio(rates[0], rates[1], protocol.outlier_mads),
        vs_relay=paired_ratio(rates[1], rates[2], protocol.outlier_mads),
        us_per_chunk=[
            sum(cpu[v, r] for r in kept) / sum(chunks[v, r] for r in kept) * 1e6 for v in (1, 2)
        ],
        rounds=len(kept),
        remeasured=rounds.remeasured,
        stopped_by=rounds.stopped_by,
    )


def _table(title: str, f: Figures, targets: bool, over_direct: bool = True) -> None:
    """Print one kind of round's figures; the target column marks what is asserted."""
    goal = ("<= 1", ">= 0.98") if targets else ("", "")
    direct = goal if over_direct else ("", "")
    rows = [
        ("p50 latency, ms", *(f"{x:.1f}" for x in f.p50_ms), ""),
        ("  added to direct, ms", "", _pm(f.added_ms["relay"]), _pm(f.added_ms["proxy"]),
         direct[0]),
        ("  added to relay, ms", "", "", _pm(f.over_relay_ms), goal[0]),
        ("p50 first chunk added, ms", "", _pm(f.first_ms["relay"]), _pm(f.first_ms["proxy"]), ""),
        ("chunks/s (median)", *(f"{statistics.median(r):.0f}" for r in f.rates), ""),
        ("  / direct (95% CI)", "", _ci(f.relay_vs_direct), _ci(f.vs_direct), direct[1]),
        ("  / relay (95% CI)", "", "", _ci(f.vs_relay), goal[1]),
        ("CPU per chunk, us", "", f"{f.us_per_chunk[0]:.1f}", f"{f.us_per_chunk[1]:.1f}", ""),
    ]  # fmt: skip
    print(f"\n{title}; {f.rounds} paired rounds ({f.remeasured} re-measured, {f.stopped_by})")
    for row in [("", "direct", "plain relay", "serve-proxy", "target"), *rows]:
        print(f"{row[0]:28}{row[1]:>12}{row[2]:>20}{row[3]:>20}{row[4]:>10}")


def test_proxy_overhead_at_64_streams(benchmark: Any, servers: tuple[tuple[str, int], ...]) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("CPU time per process is read from /proc (Linux)")
    clients = Clients([url for url, _ in servers])
    pids = [pid for _, pid in servers]
    ours = [*pids, os.getpid()]
    try:
        for target in (0, 1, 2):  # warm-up: connections opened, code paths hot
            clients.burst(target)
            clients.closed(target)
        b0, o0, t0 = _busy_s(), sum(map(_cpu_s, ours)), time.perf_counter()
        closed = benchmark.pedantic(
            lambda: _run(PROTOCOL, clients.closed, pids), rounds=1, iterations=1
        )
        wall = time.perf_counter() - t0
        others = max(_busy_s() - b0 - (sum(map(_cpu_s, ours)) - o0), 0.0) / wall
        burst = _run(BURST, clients.burst, pids)
    finally:
        clients.close()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quiet = (cpus or 1) >= 2 and others < QUIET_OTHERS_CPUS
    benchmark.extra_info.update(
        streams=STREAMS,
        cpus=cpus,
        load_1min=os.getloadavg()[0],
        others_cpus=others,
        rounds=closed.rounds,
        remeasured=closed.remeasured,
        stopped_by=closed.stopped_by,
        p50_direct_ms=closed.p50_ms[0],
        p50_relay_ms=closed.p50_ms[1],
        p50_proxy_ms=closed.p50_ms[2],
        added_p50_ms=closed.added_ms["proxy"][0],
        added_p50_se_ms=closed.added_ms["proxy"][1],
        added_p50_relay_ms=closed.added_ms["relay"][0],
        added_p50_over_relay_ms=closed.over_relay_ms[0],
        added_first_chunk_ms=closed.first_ms["proxy"][0],
        throughput_ratio=closed.vs_direct.value,
        throughput_ratio_relay=closed.relay_vs_direct.value,
        cpu_relay_us_per_chunk=closed.us_per_chunk[0],
        cpu_proxy_us_per_chunk=closed.us_per_chunk[1],
        burst_added_p50_ms=burst.added_ms["proxy"][0],
        burst_added_p50_relay_ms=burst.added_ms["relay"][0],
        burst_throughput_ratio=burst.vs_direct.value,
    )
    print(
        f"\n{STREAMS} streams x {CHUNKS} chunks every {PAUSE_S * 1000:g} ms; {cpus} CPUs, load"
        f" {os.getloadavg()[0]:.1f}, others used {others:.2f} cores during the closed-loop"
        f" rounds ({_asserted(quiet, cpus or 1)})"
    )
    _table(
        f"closed loop, {STREAMS} in flight, steady {WINDOW_S:g} s window per target and round",
        closed,
        quiet,
        (cpus or 1) >= OWN_CORES_FOR_HOP,
    )
    _table(f"burst: {STREAMS} requests sent at once (a thundering herd, not the target)", burst,
           False)  # fmt: skip
    cpu = closed.us_per_chunk
    assert cpu[1] <= cpu[0] * CPU_OVER_RELAY, f"CPU per chunk {cpu[1]:.1f} us vs relay {cpu[0]:.1f}"
    if quiet:
        targets = {"over the plain relay": closed.over_relay_ms}
        if (cpus or 1) >= OWN_CORES_FOR_HOP:
            targets["over direct"] = closed.added_ms["proxy"]
        for what, (added, se) in targets.items():
            allow = min(max(2 * se, MIN_NOISE_MS), MAX_NOISE_MS)
            assert added <= TARGET_ADDED_MS + allow, f"added p50 {what} {added:.2f} ± {se:.2f} ms"
        ratios = {"to the plain relay": closed.vs_relay}
        if (cpus or 1) >= OWN_CORES_FOR_HOP:
            ratios["to direct"] = closed.vs_direct
        for what, r in ratios.items():
            allow_ratio = min(r.halfwidth, MAX_NOISE_RATIO)
            assert r.value >= TARGET_RATIO - allow_ratio, f"throughput ratio {what} {_ci(r)}"


def _asserted(quiet: bool, cpus: int) -> str:
    if not quiet:
        return "busy: targets not asserted"
    if cpus >= OWN_CORES_FOR_HOP:
        return "quiet: targets asserted"
    return (
        f"quiet: targets asserted over the plain relay; over direct printed (under"
        f" {OWN_CORES_FOR_HOP} CPUs the hop shares the cores with the clients and the upstream)"
    )


def _pm(x: tuple[float, float]) -> str:
    return f"{x[0]:+.2f} ± {x[1]:.2f}"


def _ci(r: Ratio) -> str:
    return f"{r.value:.3f} ({r.low:.3f}-{r.high:.3f})"
