"""Fakes for tests and for users' CI: a fake clock, a fake GPU and its loads, a replay device.

``FakeGPU`` models what real NVIDIA hardware does to a measurement: an energy counter and a
power value that refresh only every ``update_period_s`` (100 ms on an H100), a power sensor
that sees only part of each update period, a counter that integrates every instant or only
what that sensor sees, counter quantisation, sensor noise, and an optional averaged-power
mode. Its true energy is known exactly (:meth:`FakeGPU.true_energy_j`), so tests can check
accuracy and uncertainty. Loads (:class:`Steady`, :class:`Steps`, :class:`SquareWave`,
:class:`RandomKernels`, or any :class:`Load`; :class:`Running` for one that ran before
the job) give the true power and its exact integral, so
a read costs the same after a day of simulated time as after a second.

With :class:`FakeClock` the real sampler thread runs on simulated time: ``clock.advance(2.0)``
returns once every tick due in those two seconds has been taken, so results are exact and
tests never sleep.
"""

from __future__ import annotations

import abc
import bisect
import csv
import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from greenai.clock import SYSTEM_CLOCK, Clock
from greenai.devices.base import Device, Reading
from greenai.errors import ConfigError, DeviceReadError

__all__ = [
    "FakeClock",
    "FakeGPU",
    "Load",
    "RandomKernels",
    "ReplayDevice",
    "Running",
    "SquareWave",
    "Steady",
    "Steps",
]

CounterMode = Literal["exact", "sampled"]


class FakeClock:
    """A manual clock; sampler threads that wait on it advance only with :meth:`advance`.

    A wait by any other thread (the tracker's idle baseline, for example) advances the clock
    itself, like a fake ``sleep``. Each attached thread has its own wake-up event, so an
    advance wakes only the threads whose deadline fell due (a simulated day of ticks stays
    cheap).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._t = float(start)
        self._cond = threading.Condition()  # guards the fields; notified on every change
        self._waiters: dict[int, float | None] = {}  # id(token) -> deadline; None while busy
        self._wake: dict[int, threading.Event] = {}

    def now(self) -> float:
        """The simulated time in seconds."""
        return self._t

    def attach(self, token: object) -> None:
        """Register a sampler thread (busy until its first wait)."""
        with self._cond:
            self._waiters[id(token)] = None
            self._wake[id(token)] = threading.Event()

    def detach(self, token: object) -> None:
        """Unregister a sampler thread that has ended."""
        with self._cond:
            self._waiters.pop(id(token), None)
            self._wake.pop(id(token), None)
            self._cond.notify_all()

    def wait_until(self, token: object, deadline: float, stop: threading.Event) -> bool:
        """Block a registered thread until simulated time reaches ``deadline`` or ``stop``."""
        key = id(token)
        with self._cond:
            if key not in self._waiters:
                self._advance_locked(deadline - self._t)
                return stop.is_set()
            self._waiters[key] = deadline
            wake = self._wake[key]
            self._cond.notify_all()
        while True:
            with self._cond:
                if stop.is_set() or self._t >= deadline:
                    if key in self._waiters:
                        self._waiters[key] = None  # busy: advance() waits for its next wait
                    # No notify: the advancing thread waits until this one waits again (its
                    # next wait_until) or detaches, and each of those notifies.
                    return stop.is_set()
            wake.wait(0.01)  # set by advance() when due; the timeout notices ``stop``
            wake.clear()

    def advance(self, seconds: float) -> None:
        """Move time forward, letting every attached sampler take each tick that falls due."""
        with self._cond:
            self._advance_locked(seconds)

    def _advance_locked(self, seconds: float) -> None:
        if seconds < 0:
            raise ConfigError(f"a clock cannot go back ({seconds} s)")
        target = self._t + seconds
        while True:
            self._settle()
            due = [d for d in self._waiters.values() if d is not None and d <= target]
            if not due:
                break
            self._t = max(self._t, min(due))
            # One at a time, in the order they attached: threads due at one instant (the
            # sampler's read and the live thread's settle pass) would otherwise race, and a
            # run's figures would differ from one try to the next.
            for key, d in list(self._waiters.items()):
                if d is not None and d <= self._t:
                    self._wake[key].set()
                    self._settle(key)
        self._t = target

    def _settle(self, key: int | None = None) -> None:
        """Wait until every attached thread (or ``key``'s) waits on a deadline in the future."""

        def busy() -> bool:
            if key is not None:
                d = self._waiters.get(key, math.inf)
                return d is None or d <= self._t
            return any(d is None or d <= self._t for d in self._waiters.values())

        while busy():
            self._cond.wait(0.01)


# --- loads: a GPU's true power over time, with its exact integral --------------------------
class Load(abc.ABC):
    """The true power a :class:`FakeGPU` draws, as a function of seconds since ``open()``.

    Subclasses give the power at an instant and its integral from 0; :class:`FakeGPU` reads
    energy only through :meth:`energy_j`, so a closed form there makes every read O(1).
    Before 0 the power at 0 holds.
    """

    @abc.abstractmethod
    def power_w(self, t_s: float) -> float:
        """The true power (W) at ``t_s`` seconds (``t_s >= 0``)."""

    @abc.abstractmethod
    def _energy_from_zero_j(self, t_s: float) -> float:
        """The exact energy (J) drawn over ``[0, t_s]`` (``t_s > 0``)."""

    def energy_j(self, t_s: float) -> float:
        """The exact energy (J) drawn from 0 to ``t_s`` (negative before 0)."""
        if t_s <= 0.0:
            return t_s * self.power_w(0.0)
        return self._energy_from_zero_j(t_s)


class Steady(Load):
    """A constant power (W)."""

    def __init__(self, power_w: float) -> None:
        self.level_w = float(power_w)

    def power_w(self, t_s: float) -> float:
        """The constant level (W)."""
        return self.level_w

    def _energy_from_zero_j(self, t_s: float) -> float:
        return self.level_w * t_s

    def __repr__(self) -> str:
        return f"Steady({self.level_w:g} W)"


class Steps(Load):
    """Piecewise-constant power: ``(duration_s, watts)`` segments; the last one holds."""

    def __init__(self, segments: Sequence[tuple[float, float]]) -> None:
        pairs = [(float(d), float(w)) for d, w in segments]
        if not pairs:
            raise ConfigError("Steps needs at least one (duration_s, watts) segment")
        if any(not d >= 0 for d, _ in pairs):
            raise ConfigError(f"Steps: segment durations must be >= 0 s, got {pairs}")
        self._edges = [0.0]
        self._cum_j = [0.0]
        for d, w in pairs:
            self._edges.append(self._edges[-1] + d)
            self._cum_j.append(self._cum_j[-1] + d * w)
        self._levels = [w for _, w in pairs]

    def power_w(self, t_s: float) -> float:
        """The level of the segment holding ``t_s`` (W)."""
        i = bisect.bisect_right(self._edges, t_s) - 1
        return self._levels[min(max(i, 0), len(self._levels) - 1)]

    def _energy_from_zero_j(self, t_s: float) -> float:
        i = min(bisect.bisect_right(self._edges, t_s) - 1, len(self._levels) - 1)
        return self._cum_j[i] + (t_s - self._edges[i]) * self._levels[i]


class SquareWave(Load):
    """``high_w`` for ``high_s``, then ``low_w`` for ``low_s``, repeated; closed-form energy.

    Args:
        high_s: Seconds at ``high_w`` in each period.
        low_s: Seconds at ``low_w`` in each period.
        high_w: The high level (W).
        low_w: The low level (W).
        start_s: When a high stretch begins (any one; the wave runs before it too).
    """

    def __init__(
        self,
        high_s: float,
        low_s: float,
        *,
        high_w: float = 700.0,
        low_w: float = 100.0,
        start_s: float = 0.0,
    ) -> None:
        if not (high_s > 0 and low_s > 0):
            raise ConfigError(f"SquareWave needs high_s and low_s > 0, got {high_s}, {low_s}")
        self.high_s, self.low_s = float(high_s), float(low_s)
        self.high_w, self.low_w = float(high_w), float(low_w)
        self.start_s = float(start_s)
        self.period_s = self.high_s + self.low_s
        self._period_j = self.high_w * self.high_s + self.low_w * self.low_s

    def power_w(self, t_s: float) -> float:
        """``high_w`` or ``low_w``, by where ``t_s`` falls in the period."""
        r = (t_s - self.start_s) % self.period_s
        return self.high_w if r < self.high_s else self.low_w

    def _wave_j(self, x: float) -> float:
        n = math.floor(x / self.period_s)
        r = x - n * self.period_s
        return (
            n * self._period_j
            + self.high_w * min(r, self.high_s)
            + self.low_w * max(r - self.high_s, 0.0)
        )

    def _energy_from_zero_j(self, t_s: float) -> float:
        return self._wave_j(t_s - self.start_s) - self._wave_j(-self.start_s)

    def __repr__(self) -> str:
        return (
            f"SquareWave({self.high_s * 1e3:g} ms at {self.high_w:g} W / "
            f"{self.low_s * 1e3:g} ms at {self.low_w:g} W)"
        )


class _Chunks:
    """A trace built forward, chunk by chunk, kept as one (start, energy, state) per chunk.

    ``build(index, state)`` returns a chunk's piece edges (seconds from its start), the
    constant power of each piece (W) and the state at its end. Looking up an instant costs
    O(log chunks), plus rebuilding its chunk from its seed when that chunk is not among the
    few cached: never the whole history. With ``bin_s`` every piece is that long.
    """

    _CACHED = 8

    def __init__(
        self,
        build: Callable[[int, float], tuple[np.ndarray, np.ndarray, float]],
        bin_s: float | None = None,
    ) -> None:
        self._build = build
        self._bin_s = bin_s
        self._starts = [0.0]
        self._energy = [0.0]
        self._state = [0.0]
        self._cache: dict[int, tuple[list[float], list[float] | np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        # (start, end, energy at start, power, cumulative energy) of the newest chunk
        self._newest: tuple[float, float, float, list[float] | np.ndarray, np.ndarray] | None = None

    def _keep(
        self, i: int, edges: np.ndarray, power: np.ndarray
    ) -> tuple[list[float], list[float] | np.ndarray, np.ndarray]:
        cum = np.concatenate([[0.0], np.cumsum(np.diff(edges) * power)])
        if self._bin_s is None:
            hit: tuple[list[float], list[float] | np.ndarray, np.ndarray] = (
                edges.tolist(),
                power.tolist(),
                cum,
            )
        else:
            hit = ([], power, cum)
        if len(self._cache) >= self._CACHED:
            self._cache.pop(next(iter(self._cache)))
        self._cache[i] = hit
        return hit

    def _locate(self, t_s: float) -> int:
        while self._starts[-1] <= t_s:  # extend forward
            i = len(self._starts) - 1
            edges, power, state = self._build(i, self._state[i])
            hit = self._keep(i, edges, power)
            self._starts.append(self._starts[-1] + float(edges[-1]))
            self._energy.append(self._energy[-1] + float(hit[2][-1]))
            self._state.append(state)
        if t_s >= self._starts[-2]:  # the newest chunk: where a running job reads
            return len(self._starts) - 2
        return bisect.bisect_right(self._starts, t_s) - 1

    def at(self, t_s: float) -> tuple[float, float]:
        """(power (W), energy since 0 (J)) at ``t_s >= 0``."""
        newest = self._newest  # where a running job reads: no lock, no search
        if newest is not None and newest[0] <= t_s < newest[1]:
            start, _, energy, power_w, cum = newest
            x = t_s - start
            k = min(int(x / self._bin_s), len(power_w) - 1)  # type: ignore[operator]
            p = float(power_w[k])
            return p, energy + float(cum[k]) + (x - k * self._bin_s) * p  # type: ignore[operator]
        with self._lock:
            i = self._locate(t_s)
            hit = self._cache.get(i)
            if hit is None:
                edges, power, _ = self._build(i, self._state[i])
                hit = self._keep(i, edges, power)
            edges_list, power_w, cum = hit
            x = t_s - self._starts[i]
            last = len(power_w) - 1
            if self._bin_s is None:
                k = min(bisect.bisect_right(edges_list, x) - 1, last)
                left = edges_list[k]
            else:
                k = min(int(x / self._bin_s), last)
                left = k * self._bin_s
            p = float(power_w[k])
            if self._bin_s is not None and i == len(self._starts) - 2:
                self._newest = (self._starts[i], self._starts[i + 1], self._energy[i], power_w, cum)
            return p, self._energy[i] + float(cum[k]) + (x - left) * p


class RandomKernels(Load):
    """Kernels of random length alternating with gaps: ``high_w`` then ``low_w``, repeated.

    Each stretch lasts a uniform random ``min_s``–``max_s`` (10–40 ms by default), so the load
    varies inside every 100 ms sensor update without locking to it. Seeded and lazily built in
    blocks of 64 stretches, so any instant's energy is exact and cheap to look up.
    """

    _PER_CHUNK = 64  # even: every block starts with a kernel

    def __init__(
        self,
        *,
        high_w: float = 700.0,
        low_w: float = 100.0,
        min_s: float = 0.010,
        max_s: float = 0.040,
        seed: int = 0,
    ) -> None:
        if not 0 < min_s <= max_s:
            raise ConfigError(f"RandomKernels needs 0 < min_s <= max_s, got {min_s}, {max_s}")
        self.high_w, self.low_w = float(high_w), float(low_w)
        self.min_s, self.max_s = float(min_s), float(max_s)
        self.seed = int(seed)
        levels = np.tile([self.high_w, self.low_w], self._PER_CHUNK // 2)

        def build(i: int, state: float) -> tuple[np.ndarray, np.ndarray, float]:
            rng = np.random.default_rng((self.seed, 17, i))
            lengths = rng.uniform(self.min_s, self.max_s, self._PER_CHUNK)
            return np.concatenate([[0.0], np.cumsum(lengths)]), levels, 0.0

        self._chunks = _Chunks(build)

    def power_w(self, t_s: float) -> float:
        """The level at ``t_s`` (W)."""
        return self._chunks.at(max(t_s, 0.0))[0]

    def _energy_from_zero_j(self, t_s: float) -> float:
        return self._chunks.at(t_s)[1]

    def __repr__(self) -> str:
        return (
            f"RandomKernels({self.min_s * 1e3:g}–{self.max_s * 1e3:g} ms, "
            f"{self.high_w:g}/{self.low_w:g} W, seed {self.seed})"
        )


class Running(Load):
    """``inner`` already running for ``lead_s`` seconds at ``open()``: the job starts inside it.

    A plain :class:`Load` holds its power at 0 before 0, so the power value read at a job's
    start (its window lies before the job) sees a constant level, and a varying load looks
    like a step at the start (``RandomKernels``: a 700 W kernel held before every job).
    Wrapped, the load's own history lies before the job, as on a GPU whose work was
    running when tracking began.

    Raises:
        ConfigError: ``lead_s`` is not a positive number.
    """

    def __init__(self, inner: Load, lead_s: float = 2.0) -> None:
        if not (isinstance(lead_s, int | float) and lead_s > 0 and math.isfinite(lead_s)):
            raise ConfigError(f"Running needs a positive lead_s in seconds, got {lead_s!r}")
        self.inner, self.lead_s = inner, float(lead_s)

    def power_w(self, t_s: float) -> float:
        """The inner load's power (W) ``lead_s`` later in its own time."""
        return self.inner.power_w(t_s + self.lead_s)

    def energy_j(self, t_s: float) -> float:
        """The exact energy (J) from 0 to ``t_s`` (negative before 0, back to ``-lead_s``)."""
        return self.inner.energy_j(t_s + self.lead_s) - self.inner.energy_j(self.lead_s)

    def _energy_from_zero_j(self, t_s: float) -> float:
        return self.energy_j(t_s)

    def __repr__(self) -> str:
        return f"Running({self.inner!r}, lead_s={self.lead_s:g})"


class _FunctionLoad(Load):
    """A power function of time, held over 1 ms bins and integrated chunk by chunk."""

    _BIN_S = 0.001
    _BINS = 1000

    def __init__(self, fn: Callable[[float], float]) -> None:
        self._fn = fn
        times = np.arange(self._BINS + 1) * self._BIN_S

        def build(i: int, state: float) -> tuple[np.ndarray, np.ndarray, float]:
            t0 = i * self._BINS * self._BIN_S
            power = np.array([float(fn(t0 + t)) for t in times[:-1]])
            return times, power, 0.0

        self._chunks = _Chunks(build, bin_s=self._BIN_S)

    def power_w(self, t_s: float) -> float:
        """The function's value at the start of the 1 ms bin holding ``t_s`` (W)."""
        return self._chunks.at(max(t_s, 0.0))[0]

    def _energy_from_zero_j(self, t_s: float) -> float:
        return self._chunks.at(t_s)[1]


class _Wander:
    """A smooth random wander of the true power: AR(1) at 1 ms with a ~100 ms memory.

    Zero before 0. Built in seeded 10 s chunks (closed-form AR(1) within each), so any instant
    costs O(1) and nothing grows with the run but a few floats per simulated 10 s.
    """

    _BIN_S = 0.001
    _BINS = 10_000
    _A = 0.99
    _RUN = 500

    def __init__(self, std_w: float, seed: int) -> None:
        self.std_w = float(std_w)
        growth = self._A ** np.arange(1, self._RUN + 1)
        times = np.arange(self._BINS + 1) * self._BIN_S
        shock_w = self.std_w * math.sqrt(1 - self._A**2)

        def build(i: int, state: float) -> tuple[np.ndarray, np.ndarray, float]:
            shocks = np.random.default_rng((seed, 23, i)).normal(0.0, shock_w, self._BINS)
            # x_k = a^k (x_0 + sum_{j<=k} a^-j s_j), in runs of 500 bins so that a^-j stays
            # below 160 and float64 keeps ~14 digits; all runs' sums at once, then each
            # run's start from the previous run's end.
            sums = np.cumsum(shocks.reshape(-1, self._RUN) / growth, axis=1)
            starts = np.empty(len(sums))
            x = state
            for r in range(len(sums)):
                starts[r] = x
                x = float(growth[-1] * (x + sums[r, -1]))
            levels = (growth * (starts[:, None] + sums)).ravel()
            return times, levels, x

        self._chunks = _Chunks(build, bin_s=self._BIN_S)

    def energy_j(self, t_s: float) -> float:
        if t_s <= 0.0 or self.std_w == 0.0:
            return 0.0
        return self._chunks.at(t_s)[1]


def as_load(
    power_w: float | Sequence[tuple[float, float]] | Callable[[float], float] | Load,
) -> Load:
    """A :class:`Load` from what :class:`FakeGPU` accepts as ``power_w``.

    Raises:
        ConfigError: For an empty list of segments.
    """
    if isinstance(power_w, Load):
        return power_w
    if isinstance(power_w, int | float):
        return Steady(float(power_w))
    if callable(power_w):
        return _FunctionLoad(power_w)
    return Steps(power_w)


# --- the fake GPU ---------------------------------------------------------------------------
class FakeGPU(Device):
    """A simulated NVIDIA GPU: a seeded true power, and the sensor that reports it.

    **The sensor.** Counter and power value refresh together every ``update_period_s``, at
    a seeded phase (``update_phase_s``). Each update's power value is the true power averaged
    over a *sampling window* of ``sensor_window_s`` inside the period that ends at the update,
    starting ``sensor_offset_s`` after the period's start. Yang, Adámek and Armour measured
    that on A100 and H100 this window is about 25 ms of each 100 ms update (GH200: 20 ms), at
    an offset that cannot be chosen ("Accurate and Convenient Energy Measurements for GPUs",
    SC'24; preprint "Part-time Power Measurements: nvidia-smi's Lack of Attention",
    arXiv:2312.02741). Whether the total-energy counter integrates every instant is not
    published, so both models are here:

    - ``counter_mode="exact"``: the counter holds the exact energy up to each update (what
      greenai's design assumes);
    - ``counter_mode="sampled"``: it adds update period × the mean true power over that
      update's sampling window (the power value before its own noise), so it is part-time
      like the power value: loads that vary inside 100 ms read wrong, and power and counter
      agree with each other.

    ``sensor_window_s=update_period_s`` makes the power sensor integrate the whole period.
    With ``instant=False`` the power value is the mean of the last 1 s of updates
    (``nvmlDeviceGetPowerUsage`` on Hopper), each part-time like the instant one.

    **Cost.** A read costs O(1) however long the simulated job has run (under 10 µs on a busy
    2-core VM for a new update, about 2 µs when the value is unchanged since the last read),
    and memory grows by a few floats per simulated second (one per update for a sampled counter
    or averaged power). Give a :class:`Load` with a closed form (:class:`Steady`,
    :class:`Steps`, :class:`SquareWave`, :class:`RandomKernels`); a plain function is
    evaluated once per simulated millisecond.

    Args:
        name: Device name.
        power_w: The true power: watts (steady), a list of ``(duration_s, watts)`` segments
            (the last one holds), a :class:`Load`, or a function of seconds since ``open()``.
        noise_w: Standard deviation of the true power's wander (a smooth AR(1) process at
            1 ms with a ~100 ms memory, added to the load; it is not clipped, so keep it well
            below the load's lowest level).
        sensor_noise_w: Standard deviation of the noise on each power value.
        update_period_s: How often counter and power refresh (0.1 s like an H100).
        sensor_window_s: Seconds of each update period the power sensor averages; None for a
            quarter of it (25 ms of 100 ms, as on A100 and H100); ``update_period_s`` for all.
        sensor_offset_s: Where that window starts, in seconds after the start of the period
            that ends at the update; None puts it at the period's end.
        counter_mode: ``"exact"`` or ``"sampled"`` (see above).
        update_phase_s: When the first update after ``open()`` happens, in seconds
            (``0 <= phase < update_period_s``); None draws it from ``seed``.
        update_jitter_s: How far each update falls from its place on the period's grid,
            at most (s, uniform, seeded; ``0 <= jitter < update_period_s / 2``): a sensor
            whose firmware does not keep time to the read's precision.
        clock_ppm: How far the sensor's clock runs from the reads' (parts per million;
            positive: its updates come every ``update_period_s × (1 + ppm / 10⁶)`` of the
            reads' clock, slow). Host and GPU keep time on separate crystals (a common
            tolerance is ±20-50 ppm each), and a firmware period may be off its nominal
            value; ``update_period_s`` stays the declared one. Must be finite, under 10⁴
            in size.
        counter_resolution_j: Counter quantisation (NVML counts millijoules).
        instant: True for an instant-power field; False for a 1 s moving average
            (``nvmlDeviceGetPowerUsage`` on Hopper).
        counter: Whether the total-energy counter exists (False: method "power").
        power_limit_w: The declared power limit (W; what NVML's enforced limit reports), or
            None for none known. Declared only: the load is not clipped to it.
        failures: ``(start_s, end_s)`` spans, in seconds since ``open()``, where read() fails.
        seed: Seed of every random choice.
        clock: The clock reads are timed with; use the tracker's.
        uuid: A GPU UUID (``GPU-...``); ranks of a distributed job that read the same
            UUID on one host read one GPU, and the job counts it once.

    Raises:
        ConfigError: For a period, window, offset, phase or counter mode out of range.
    """

    kind = "gpu"
    may_hang = False  # in memory: read inline by the sampler
    _NOISE_BLOCK = 4096

    def __init__(
        self,
        name: str = "gpu0",
        *,
        power_w: float | Sequence[tuple[float, float]] | Callable[[float], float] | Load = 300.0,
        noise_w: float = 5.0,
        sensor_noise_w: float = 2.0,
        update_period_s: float = 0.1,
        sensor_window_s: float | None = None,
        sensor_offset_s: float | None = None,
        counter_mode: CounterMode = "exact",
        update_phase_s: float | None = None,
        update_jitter_s: float = 0.0,
        clock_ppm: float = 0.0,
        counter_resolution_j: float = 0.001,
        instant: bool = True,
        counter: bool = True,
        power_limit_w: float | None = None,
        failures: Sequence[tuple[float, float]] = (),
        seed: int = 0,
        clock: Clock = SYSTEM_CLOCK,
        uuid: str | None = None,
    ) -> None:
        T = update_period_s
        if not (isinstance(T, int | float) and T > 0):
            raise ConfigError(f"update_period_s must be > 0, got {update_period_s!r}")
        window = T / 4 if sensor_window_s is None else sensor_window_s
        if not 0 < window <= T * (1 + 1e-9):
            raise ConfigError(
                f"sensor_window_s must be in (0, update_period_s={T}], got {sensor_window_s!r}"
            )
        window = min(window, T)
        offset = T - window if sensor_offset_s is None else sensor_offset_s
        if not 0 <= offset <= T - window + 1e-9:
            raise ConfigError(
                f"sensor_offset_s must be in [0, {T - window:g}] (period − window), "
                f"got {sensor_offset_s!r}"
            )
        if counter_mode not in ("exact", "sampled"):
            raise ConfigError(f"counter_mode must be 'exact' or 'sampled', got {counter_mode!r}")
        rng = np.random.default_rng(seed)
        phase = float(rng.uniform(0, T))
        if update_phase_s is not None:
            if not 0 <= update_phase_s < T:
                raise ConfigError(f"update_phase_s must be in [0, {T}), got {update_phase_s!r}")
            phase = float(update_phase_s)
        self.name = name
        self.uuid = uuid
        self.method = "counter" if counter else "power"
        self.update_period_s = float(T)
        self.sensor_window_s = float(window)
        self.power_window_s = self.sensor_window_s  # what greenai's rules are told
        self.sensor_offset_s = float(offset)
        self._window_tail_s = float(T - window - offset)  # from the window's end to the update
        self.counter_mode: CounterMode = counter_mode
        self.counter_integrates = counter_mode == "exact"
        self.update_phase_s = phase
        if not 0 <= update_jitter_s < T / 2:
            raise ConfigError(f"update_jitter_s must be in [0, {T / 2:g}), got {update_jitter_s!r}")
        self.update_jitter_s = float(update_jitter_s)
        if not (isinstance(clock_ppm, int | float) and abs(clock_ppm) < 1e4):
            raise ConfigError(f"clock_ppm must be a number under 1e4 in size, got {clock_ppm!r}")
        self.clock_ppm = float(clock_ppm)
        self._period_s = float(T) * (1.0 + self.clock_ppm * 1e-6)  # in the reads' clock
        self._jitter_seed = float(seed % 9973) + 0.5
        self.counter_resolution_j = counter_resolution_j if counter else 0.0
        self.relative_uncertainty = 0.05 if instant else 0.10
        if power_limit_w is not None and not power_limit_w > 0:
            raise ConfigError(f"power_limit_w must be > 0 W or None, got {power_limit_w!r}")
        self.power_limit_w = None if power_limit_w is None else float(power_limit_w)
        self.load = as_load(power_w)
        self._wander = _Wander(noise_w, seed)
        self._sensor_noise_w = float(sensor_noise_w)
        self._instant = instant
        self._failures = [(float(a), float(b)) for a, b in failures]
        self._seed = int(seed)
        self._offset_j = float(rng.uniform(1e5, 1e7))  # counts since driver load
        self._clock = clock
        self._origin: float | None = None
        # Sum over updates 1..k of period × power value (the sampled counter's increments).
        self._sampled = np.zeros(1024)
        self._sampled_n = 1  # _sampled[:_sampled_n] is filled; _sampled[0] = 0
        self._sampled_base_j: float | None = None
        self._noise_block: tuple[int, np.ndarray] | None = None
        self._last: tuple[int, float | None, float] | None = None  # update, counter, power
        self._memo: dict[float, float] = {}
        self._lock = threading.Lock()  # the sampler thread and the test both read
        self.reads = 0

    def open(self) -> None:
        """Start the simulated trace at the clock's current time."""
        if self._origin is None:
            self._origin = self._clock.now()

    @property
    def opened_at_s(self) -> float | None:
        """The clock time the simulated trace starts at (the first open), or None before."""
        return self._origin

    def detail(self) -> str:
        """One line on the simulation."""
        kind = "instant" if self._instant else "1 s averaged"
        return (
            f"FakeGPU (simulated, {kind} power over {self.sensor_window_s * 1e3:g} ms of each "
            f"{self.update_period_s * 1e3:g} ms update, {self.counter_mode} counter)"
        )

    def read(self) -> Reading:
        """The counter and power as the simulated hardware would report them now."""
        return self.reading_at(self._clock.now())

    def reading_at(self, t: float) -> Reading:
        """What a read at clock time ``t`` gives (a fake sampling loop reads between ticks).

        Raises:
            DeviceReadError: A simulated read failure covers ``t``.
            ConfigError: The GPU was not opened.
        """
        elapsed = self._elapsed(t)
        self.reads += 1
        for a, b in self._failures:
            if a <= elapsed < b:
                raise DeviceReadError(f"{self.name}: simulated read failure at {elapsed:.3f} s")
        k = self._update_index(elapsed)
        last = self._last
        if last is None or last[0] != k:
            with self._lock:
                counter = self._counter_j(k) if self.method == "counter" else None
                power = max(0.0, self._reported_power_w(k) + self._sensor_noise(k))
            last = self._last = (k, counter, power)
        return Reading(energy_j=last[1], power_w=last[2])

    def true_energy_j(self, t0: float, t1: float) -> float:
        """The exact energy (J) the simulated GPU drew between clock times ``t0`` and ``t1``."""
        with self._lock:
            return self._energy(self._elapsed(t1)) - self._energy(self._elapsed(t0))

    def counter_j(self, t: float) -> float | None:
        """The counter value (J) the hardware shows at clock time ``t``.

        Unquantised, and without read failures; None when the GPU has no counter.
        """
        if self.method != "counter":
            return None
        k = self._update_index(self._elapsed(t))
        with self._lock:
            return self._raw_counter_j(k)

    # --- the sensor model -------------------------------------------------------------------
    def _elapsed(self, t: float) -> float:
        if self._origin is None:
            raise ConfigError(f"{self.name} was not opened; start a tracker with it first")
        return t - self._origin

    def _energy(self, elapsed: float) -> float:
        """The exact energy since ``open()`` (J), negative before it."""
        memo = self._memo
        hit = memo.get(elapsed)
        if hit is None:  # an update's counter, window and sampled sum share instants
            if len(memo) >= 8:
                memo.clear()
            hit = memo[elapsed] = self.load.energy_j(elapsed) + self._wander.energy_j(elapsed)
        return hit

    def _update_time(self, k: int) -> float:
        at = self.update_phase_s + k * self._period_s
        if self.update_jitter_s:  # a seeded hash of k, uniform in [-1, 1)
            u = math.sin(k * 12.9898 + self._jitter_seed * 78.233) * 43758.5453
            at += self.update_jitter_s * (2.0 * (u - math.floor(u)) - 1.0)
        return at

    def _update_index(self, elapsed: float) -> int:
        """The last update at or before ``elapsed`` (its ``k``)."""
        k = math.floor((elapsed - self.update_phase_s) / self._period_s)
        if self.update_jitter_s:  # jitter under half a period: off by one at most
            if elapsed < self._update_time(k):
                k -= 1
            elif elapsed >= self._update_time(k + 1):
                k += 1
        return k

    def _window_power_w(self, k: int) -> float:
        """The true power averaged over update ``k``'s sampling window (W)."""
        # Counted back from the update, so the default window (ending at the update) shares
        # its end with the exact counter's instant.
        hi = self._update_time(k) - self._window_tail_s
        lo = hi - self.sensor_window_s
        return (self._energy(hi) - self._energy(lo)) / self.sensor_window_s

    def _sampled_sum_j(self, k: int) -> float:
        """Sum over updates 1..k of period × power value (J); 0 for k <= 0."""
        if k <= 0:
            return 0.0
        n = self._sampled_n
        if k >= n:
            if k >= len(self._sampled):
                grown = np.zeros(max(2 * len(self._sampled), k + 1024))
                grown[:n] = self._sampled[:n]
                self._sampled = grown
            total = float(self._sampled[n - 1])
            for j in range(n, k + 1):
                total += self.update_period_s * self._window_power_w(j)
                self._sampled[j] = total
            self._sampled_n = k + 1
        return float(self._sampled[k])

    def _raw_counter_j(self, k: int) -> float:
        if self.counter_mode == "exact" or k <= 0:
            return self._offset_j + self._energy(self._update_time(k))
        if self._sampled_base_j is None:  # the counter at update 0, where the sums start
            self._sampled_base_j = self._offset_j + self._energy(self._update_time(0))
        return self._sampled_base_j + self._sampled_sum_j(k)

    def _counter_j(self, k: int) -> float:
        raw = self._raw_counter_j(k)
        return math.floor(raw / self.counter_resolution_j) * self.counter_resolution_j

    def _reported_power_w(self, k: int) -> float:
        if self._instant:
            return self._window_power_w(k)
        n = max(1, round(1.0 / self.update_period_s))  # the last 1 s of updates
        if k - n >= 0:
            return (self._sampled_sum_j(k) - self._sampled_sum_j(k - n)) / (
                n * self.update_period_s
            )
        return sum(self._window_power_w(j) for j in range(k - n + 1, k + 1)) / n

    def _sensor_noise(self, k: int) -> float:
        if self._sensor_noise_w == 0.0:
            return 0.0
        block, i = divmod(k, self._NOISE_BLOCK)
        cached = self._noise_block
        if cached is None or cached[0] != block:
            rng = np.random.default_rng((self._seed, 7, block % 2**63))
            cached = self._noise_block = (block, rng.normal(0.0, 1.0, self._NOISE_BLOCK))
        return self._sensor_noise_w * float(cached[1][i])


class ReplayDevice(Device):
    """Plays back a timeline recorded with ``job.timeline().to_csv(path, index=False)``.

    Readings are held between recorded points, as hardware holds its last value. Time starts
    at the first recorded point when the device is opened.
    """

    may_hang = False  # in memory: read inline by the sampler

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | None = None,
        *,
        name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._path = os.fspath(path)
        self._device = device
        self.name = name or device or "replay"
        self._clock = clock
        self._origin: float | None = None
        self._t = np.zeros(0)
        self._energy = np.zeros(0)
        self._power = np.zeros(0)
        self.method = "power"

    def open(self) -> None:
        """Load the file (raises ConfigError when it is missing or ambiguous)."""
        try:
            with open(self._path, newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError as exc:
            raise ConfigError(f"cannot read replay file {self._path}: {exc}") from exc
        names = list(dict.fromkeys(r.get("device", "") for r in rows))
        if self._device is None:
            if len(names) != 1:
                raise ConfigError(f"{self._path} holds devices {names}; pick one with device=")
            self._device = names[0]
            self.name = self.name if self.name != "replay" else names[0]
        rows = [r for r in rows if r.get("device") == self._device]
        if not rows:
            raise ConfigError(f"{self._path} has no rows for device {self._device!r}; has {names}")
        self._t = np.array([float(r["t_s"]) for r in rows])
        self._energy = np.array([_float(r.get("counter_j")) for r in rows])
        self._power = np.array([_float(r.get("power_w")) for r in rows])
        if np.isfinite(self._energy).all():
            self.method = "counter"
        self._origin = self._clock.now()

    def read(self) -> Reading:
        """The recorded reading at this point of the playback."""
        if self._origin is None:
            raise DeviceReadError(f"{self.name}: replay device read before open()")
        at = self._t[0] + (self._clock.now() - self._origin)
        i = int(np.clip(np.searchsorted(self._t, at, side="right") - 1, 0, len(self._t) - 1))
        e, p = self._energy[i], self._power[i]
        return Reading(
            energy_j=float(e) if math.isfinite(e) else None,
            power_w=float(p) if math.isfinite(p) else None,
        )

    def detail(self) -> str:
        """Where the playback comes from."""
        return f"replay of {self._device or '?'} from {self._path}"


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan
