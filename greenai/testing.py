"""Fakes for tests and for users' CI: a fake clock, a fake GPU, and a replay device.

``FakeGPU`` models what real NVIDIA hardware does to a measurement: an energy counter and an
instant-power value that refresh only every ``update_period_s`` (100 ms on an H100), counter
quantisation, sensor noise, and an optional averaged-power mode. Its true energy is known
exactly (:meth:`FakeGPU.true_energy_j`), so tests can check accuracy and uncertainty.

With :class:`FakeClock` the real sampler thread runs on simulated time: ``clock.advance(2.0)``
returns once every tick due in those two seconds has been taken, so results are exact and
tests never sleep.
"""

from __future__ import annotations

import csv
import math
import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

from greenai.clock import SYSTEM_CLOCK, Clock
from greenai.devices.base import Device, Reading
from greenai.errors import ConfigError, DeviceReadError

__all__ = ["FakeClock", "FakeGPU", "ReplayDevice"]

Profile = float | Sequence[tuple[float, float]] | Callable[[float], float]


class FakeClock:
    """A manual clock; sampler threads that wait on it advance only with :meth:`advance`.

    A wait by any other thread (the tracker's idle baseline, for example) advances the clock
    itself, like a fake ``sleep``.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._t = float(start)
        self._cond = threading.Condition()
        self._waiters: dict[int, float | None] = {}  # id(token) -> deadline; None while busy

    def now(self) -> float:
        """The simulated time in seconds."""
        return self._t

    def attach(self, token: object) -> None:
        """Register a sampler thread (busy until its first wait)."""
        with self._cond:
            self._waiters[id(token)] = None

    def detach(self, token: object) -> None:
        """Unregister a sampler thread that has ended."""
        with self._cond:
            self._waiters.pop(id(token), None)
            self._cond.notify_all()

    def wait_until(self, token: object, deadline: float, stop: threading.Event) -> bool:
        """Block a registered thread until simulated time reaches ``deadline`` or ``stop``."""
        key = id(token)
        with self._cond:
            if key not in self._waiters:
                self._advance_locked(deadline - self._t)
                return stop.is_set()
            self._waiters[key] = deadline
            self._cond.notify_all()
            while not stop.is_set() and self._t < deadline:
                self._cond.wait(0.01)
            if key in self._waiters:
                self._waiters[key] = None
            self._cond.notify_all()
            return stop.is_set()

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
            self._cond.notify_all()
        self._t = target

    def _settle(self) -> None:
        """Wait until every attached thread is waiting on a deadline in the future."""
        while any(d is None or d <= self._t for d in self._waiters.values()):
            self._cond.wait(0.01)


class FakeGPU(Device):
    """A simulated NVIDIA GPU with a seeded power trace.

    Args:
        name: Device name.
        power_w: The true power: watts (steady), a list of ``(duration_s, watts)`` segments
            (the last one holds), or a function of seconds since ``open()``.
        noise_w: Standard deviation of the true power's fluctuation (a smooth AR(1) process).
        sensor_noise_w: Standard deviation of the noise on each instant-power value.
        update_period_s: How often counter and power refresh (0.1 s like an H100).
        counter_resolution_j: Counter quantisation (NVML counts millijoules).
        instant: True for an instant-power field; False for a 1 s moving average
            (``nvmlDeviceGetPowerUsage`` on Hopper).
        counter: Whether the total-energy counter exists (False: method "power").
        failures: ``(start_s, end_s)`` spans, in seconds since ``open()``, where read() fails.
        seed: Seed of every random choice.
        clock: The clock reads are timed with; use the tracker's.
        uuid: A GPU UUID (``GPU-...``); ranks of a distributed job that read the same
            UUID on one host read one GPU, and the job counts it once.
    """

    kind = "gpu"
    _BIN_S = 0.001

    def __init__(
        self,
        name: str = "gpu0",
        *,
        power_w: Profile = 300.0,
        noise_w: float = 5.0,
        sensor_noise_w: float = 2.0,
        update_period_s: float = 0.1,
        counter_resolution_j: float = 0.001,
        instant: bool = True,
        counter: bool = True,
        failures: Sequence[tuple[float, float]] = (),
        seed: int = 0,
        clock: Clock = SYSTEM_CLOCK,
        uuid: str | None = None,
    ) -> None:
        if not update_period_s > 0:
            raise ConfigError(f"update_period_s must be > 0, got {update_period_s!r}")
        self.name = name
        self.uuid = uuid
        self.method = "counter" if counter else "power"
        self.update_period_s = update_period_s
        self.counter_resolution_j = counter_resolution_j if counter else 0.0
        self.relative_uncertainty = 0.05 if instant else 0.10
        self._profile = _profile_function(power_w)
        self._noise_w = noise_w
        self._sensor_noise_w = sensor_noise_w
        self._instant = instant
        self._failures = list(failures)
        self._rng = np.random.default_rng(seed)
        self._phase = float(self._rng.uniform(0, update_period_s))
        self._offset_j = float(self._rng.uniform(1e5, 1e7))  # counts since driver load
        self._clock = clock
        self._origin: float | None = None
        self._power = np.zeros(0)
        self._cum = np.zeros(1)
        self._ar = 0.0
        self._lock = threading.Lock()  # the sampler thread and the test both extend the trace
        self.reads = 0

    def open(self) -> None:
        """Start the simulated trace at the clock's current time."""
        if self._origin is None:
            self._origin = self._clock.now()

    def detail(self) -> str:
        """One line on the simulation."""
        kind = "instant" if self._instant else "1 s averaged"
        return f"FakeGPU (simulated, {kind} power, updates every {self.update_period_s} s)"

    def read(self) -> Reading:
        """The counter and power as the simulated hardware would report them now."""
        elapsed = self._elapsed(self._clock.now())
        self.reads += 1
        if any(a <= elapsed < b for a, b in self._failures):
            raise DeviceReadError(f"{self.name}: simulated read failure at {elapsed:.3f} s")
        T = self.update_period_s
        update = math.floor((elapsed - self._phase) / T) * T + self._phase
        energy = None
        if self.method == "counter":
            raw = self._offset_j + self._energy_since_open(update)
            energy = math.floor(raw / self.counter_resolution_j) * self.counter_resolution_j
        window = 0.02 if self._instant else 1.0
        lo = update - window
        mean_w = (self._energy_since_open(update) - self._energy_since_open(lo)) / window
        noise = np.random.default_rng([int(update / T), 7]).normal(0.0, self._sensor_noise_w)
        return Reading(energy_j=energy, power_w=max(0.0, mean_w + float(noise)))

    def true_energy_j(self, t0: float, t1: float) -> float:
        """The exact energy (J) the simulated GPU drew between clock times ``t0`` and ``t1``."""
        return self._energy_since_open(self._elapsed(t1)) - self._energy_since_open(
            self._elapsed(t0)
        )

    def _elapsed(self, t: float) -> float:
        if self._origin is None:
            raise ConfigError(f"{self.name} was not opened; start a tracker with it first")
        return t - self._origin

    def _energy_since_open(self, elapsed: float) -> float:
        if elapsed <= 0:  # before open(): the trace's first level, extended backwards
            return elapsed * float(self._profile(0.0))
        self._extend(elapsed)
        pos = elapsed / self._BIN_S
        i = int(pos)
        return float(self._cum[i] + (pos - i) * self._power[i] * self._BIN_S)

    def _extend(self, elapsed: float) -> None:
        need = int(elapsed / self._BIN_S) + 2
        if need <= len(self._power):
            return
        with self._lock:
            if need > len(self._power):
                self._grow(need)

    def _grow(self, need: int) -> None:
        n = max(need - len(self._power), 10_000)
        start = len(self._power)
        times = (start + np.arange(n)) * self._BIN_S
        base = np.array([self._profile(t) for t in times])
        shocks = self._rng.normal(0.0, self._noise_w * math.sqrt(1 - 0.99**2), n)
        ar = np.empty(n)
        level = self._ar
        for k in range(n):  # AR(1) at 1 ms with a ~100 ms memory: smooth, realistic wander
            level = 0.99 * level + shocks[k]
            ar[k] = level
        self._ar = level
        chunk = np.maximum(base + ar, 0.0)
        self._power = np.concatenate([self._power, chunk])
        self._cum = np.concatenate([self._cum, self._cum[-1] + np.cumsum(chunk) * self._BIN_S])


class ReplayDevice(Device):
    """Plays back a timeline recorded with ``job.timeline().to_csv(path, index=False)``.

    Readings are held between recorded points, as hardware holds its last value. Time starts
    at the first recorded point when the device is opened.
    """

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


def _profile_function(power_w: Profile) -> Callable[[float], float]:
    if callable(power_w):
        return power_w
    if isinstance(power_w, int | float):
        steady = float(power_w)
        return lambda t: steady
    segments = [(float(d), float(w)) for d, w in power_w]
    if not segments:
        raise ConfigError("power_w needs at least one (duration_s, watts) segment")
    edges = np.cumsum([d for d, _ in segments])
    levels = [w for _, w in segments]

    def piecewise(t: float) -> float:
        i = int(np.searchsorted(edges, t, side="right"))
        return levels[min(i, len(levels) - 1)]

    return piecewise


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan
