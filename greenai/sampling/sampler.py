"""The background thread that reads every device on a steady period.

Reads happen on this thread, never on the caller's hot path: an NVML energy-counter read
costs about 3.4 ms on an H100. ctypes releases the GIL during the NVML call, so the
training loop keeps running while a read is in flight.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Sequence

from greenai.clock import SYSTEM_CLOCK, Clock
from greenai.devices.base import Device
from greenai.errors import ConfigError, DeviceFailureWarning
from greenai.sampling.feed import DRAIN_PERIOD_S, NATIVE_PERIOD_S, NativeFeed, start_feed
from greenai.sampling.reader import ReadWorker
from greenai.timeline import Timeline

log = logging.getLogger("greenai")

MIN_PERIOD_S = 0.005
MAX_DEFAULT_PERIOD_S = 1.0

TAIL_UPDATES = 2.5
"""How long ``stop()`` reads on for each counter's next changes, in its update periods: the
update the job ends in shows whether the load changed inside it (where nothing read before
the end can; see :attr:`greenai.curve.EnergyCurve.end_step_w`), the one after it the level
after."""

TAIL_CHANGES = 2
"""How many counter changes after the end ``stop()`` reads: the update holding the end,
and the one after it (the load's level after the end)."""

MAX_TAIL_UPDATE_S = 0.2
"""Counters that update slower than this (seconds) are not waited for at ``stop()``."""


OPEN_TIMEOUT_S = 15.0
"""How long a device's ``open()`` may take before the device is skipped (seconds). NVML's
init on a machine with many GPUs takes a few seconds; a wedged driver never returns."""


def open_all(devices: Sequence[Device], timeout_s: float) -> list[BaseException | None]:
    """Open ``devices`` at once, giving up on those still opening after ``timeout_s``.

    A device whose reads may hang (``may_hang``: a driver or a file) is opened on a daemon
    thread of its own, so that eight GPUs behind one wedged driver cost one timeout, not
    eight; the others are opened inline. One that does not return in time is set aside, and
    closed if its ``open()`` ever returns.

    Returns:
        Per device, in order: None where it opened, else the exception (``TimeoutError``
        for one given up on).
    """
    results: list[BaseException | None] = [None] * len(devices)
    state: dict[int, str] = {}  # "opening", "opened", "late"
    lock = threading.Lock()

    def run(i: int, device: Device) -> None:
        try:
            device.open()
        except BaseException as exc:  # handed to the caller's thread
            results[i] = exc
            return
        with lock:
            late = state[i] == "late"
            state[i] = "opened"
        if late:  # nobody measures it: release what open() took
            with contextlib.suppress(Exception):
                device.close()

    threads = []
    for i, device in enumerate(devices):
        if not device.may_hang:
            try:
                device.open()
            except Exception as exc:
                results[i] = exc
            continue
        state[i] = "opening"
        thread = threading.Thread(
            target=run, args=(i, device), name=f"greenai-open-{device.name}", daemon=True
        )
        thread.start()
        threads.append((i, thread))
    deadline = time.monotonic() + timeout_s
    for i, thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
        with lock:
            if state[i] == "opening":
                state[i] = "late"
                results[i] = TimeoutError(f"open() did not return within {timeout_s:g} s")
    return results


def read_timeout_s(period_s: float) -> float:
    """How long a tick waits for the Python-read devices: two periods, at least a second."""
    return max(2.0 * period_s, 1.0)


def default_period_s(devices: Sequence[Device]) -> float:
    """The sampling period that follows the devices' own update periods (seconds).

    The fastest-updating *slow* source sets the pace: sampling faster than a source refreshes
    only repeats its value. Sources that refresh far faster (RAPL, ~1 ms) are read at 100 ms,
    since their counters integrate exactly between any two reads.
    """
    periods = [d.update_period_s for d in devices if d.update_period_s >= 0.05]
    if not periods:
        return 0.1
    return min(max(min(periods), MIN_PERIOD_S), MAX_DEFAULT_PERIOD_S)


class Sampler:
    """Reads ``devices`` into ``timeline`` every ``period_s`` seconds on a daemon thread.

    ``start()`` opens the devices and takes a first read on the caller's thread, so the
    start of the window is covered; ``stop()`` ends the thread and takes a last read.
    A device that fails to open is dropped with a warning; one that fails mid-run is
    warned about once, its gap is recorded, and it is retried on every tick.

    RAPL zones and NVIDIA GPUs are read by the C sampling loop (``greenai._native``) when
    it is built, ``native`` allows it and the clock is the real one: its thread never takes
    the GIL, and this thread only drains its buffer (see :mod:`greenai.sampling.feed`).

    Periods: an explicit ``period_s`` applies to every device. By default the loop reads its
    devices every :data:`~greenai.sampling.feed.NATIVE_PERIOD_S` (10 ms), while this thread
    reads the other devices at :func:`default_period_s` of those devices only. After
    :meth:`start`, :attr:`period_s` is the finest period any device is read at.

    Args:
        native: None: the C loop where :data:`~greenai.sampling.HAS_NATIVE` (re-checking
            ``GREENAI_NO_NATIVE`` at :meth:`start`); True: require it (ConfigError at
            :meth:`start` when not built); False: read every device from Python.
    """

    def __init__(
        self,
        devices: Sequence[Device],
        timeline: Timeline,
        *,
        period_s: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        native: bool | None = None,
    ) -> None:
        if period_s is not None and not period_s > 0:
            raise ConfigError(f"period_s must be a positive number of seconds, got {period_s!r}")
        self.devices = list(devices)
        self.timeline = timeline
        self._explicit_period_s = period_s
        self.period_s = period_s if period_s is not None else default_period_s(devices)
        self.native_period_s = period_s if period_s is not None else NATIVE_PERIOD_S
        self.clock = clock
        self.failed: dict[str, str] = {}
        self.ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending_warnings: list[str] = []
        self._warned: set[str] = set()
        self.native = native
        self.feed: NativeFeed | None = None
        self._polled: list[Device] = []
        self._wait_s = self.period_s
        self._reader: ReadWorker | None = None

    @property
    def python_period_s(self) -> float:
        """How often this thread wakes, in seconds (final after :meth:`start`).

        It reads the devices the native loop does not at this period, and drains the loop's
        buffer; with only loop-read devices it wakes every
        :data:`~greenai.sampling.feed.DRAIN_PERIOD_S` or the loop's period, if longer.
        """
        return self._wait_s

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open the devices, read them once, and start the thread."""
        opened = []
        for device, exc in zip(self.devices, open_all(self.devices, OPEN_TIMEOUT_S), strict=True):
            if exc is not None:  # a device must never stop the user's job
                if not isinstance(exc, Exception):
                    raise exc  # Ctrl-C while opening
                self._note(device.name, f"{device.name} could not be opened and is skipped: {exc}")
                self.failed[device.name] = str(exc)
            else:
                self.timeline.ensure(device)
                opened.append(device)
        self.devices = opened
        try:
            self.feed, self._polled = start_feed(
                opened,
                self.timeline,
                period_s=self.native_period_s,
                clock=self.clock,
                native=self.native,
                note=self._note,
            )
        except BaseException:  # native=True without the extension: nothing is left open
            for device in opened:
                device.close()
            raise
        python_s = self._explicit_period_s or default_period_s(self._polled)
        if self.feed is None:
            self._wait_s = python_s
        elif self._polled:  # drains the loop on each of its own ticks too
            self._wait_s = python_s
            self.period_s = min(python_s, self.native_period_s)
        else:
            self._wait_s = max(self.native_period_s, DRAIN_PERIOD_S)
            self.period_s = self.native_period_s
        self._reader = ReadWorker(read_timeout_s(self._wait_s))
        self.tick()
        if not self.devices:
            return
        self._stop.clear()
        self.clock.attach(self)
        self._thread = threading.Thread(target=self._run, name="greenai-sampler", daemon=True)
        try:
            self._thread.start()
        except BaseException:
            self.clock.detach(self)
            raise

    def tick(self) -> None:
        """Read every Python-read device once and drain the loop (called by the thread)."""
        if self.feed is not None:
            self.feed.drain()
        if self._polled and self._reader is not None:
            outcomes, stuck = self._reader.read(self._polled, self.clock.now)
            for out in outcomes:
                if out.reading is not None:
                    self.timeline.add(out.device.name, out.t, out.reading)
                else:
                    self._failed_read(out.device, out.t, out.error)
            if stuck is not None:
                self._failed_read(
                    stuck,
                    self.clock.now(),
                    TimeoutError(
                        f"read() did not return within {self._reader.timeout_s:g} s; set aside"
                        " until it does"
                    ),
                )
            for name in self._reader.hung:
                if stuck is None or name != stuck.name:
                    self.timeline.mark_failure(name, self.clock.now())
        self.ticks += 1

    def _failed_read(self, device: Device, t: float, exc: BaseException | None) -> None:
        self.timeline.mark_failure(device.name, t)
        if device.name not in self._warned:
            self._warned.add(device.name)
            why = str(exc) if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            self.failed[device.name] = why
            self._note(
                device.name,
                f"{device.name} failed mid-run ({why}); the other devices are still "
                "measured, the gap is recorded and the result is marked partial",
            )

    def _run(self) -> None:
        try:
            period = self._wait_s
            deadline = self.clock.now() + period
            while not self.clock.wait_until(self, deadline, self._stop):
                self.tick()
                deadline += period
                current = self.clock.now()
                if deadline < current:  # fell behind (suspended, GIL-starved): re-align
                    deadline = current + period
        except Exception:  # pragma: no cover - a sampler bug must not kill the user's job
            log.exception("greenai sampler thread failed; energy after this point is missing")
        finally:
            self.clock.detach(self)

    def stop(self) -> None:
        """Stop the thread, take the last read, close the devices, and emit warnings."""
        if self._thread is not None:
            self._stop.set()
            # A tick waits at most read_timeout_s on a hung read: the join is bounded.
            self._thread.join()
            self._thread = None
        if self.feed is not None:
            self.feed.stop()
            self.failed.update(self.feed.failed)
        self.tick()
        try:
            self._read_tail()
        except Exception as exc:  # the tail must never cost the job its figure
            log.warning("greenai: reading on after the job's end failed: %r", exc)
        if self._reader is not None:
            self._reader.close()
        for device in self.devices:
            if self._reader is not None and device.name in self._reader.hung:
                continue  # its read is still in flight: closing under it could crash
            try:
                device.close()
            except Exception as exc:  # pragma: no cover - close must not raise
                log.debug("closing %s failed: %s", device.name, exc)
        for message in self._pending_warnings:
            warnings.warn(message, DeviceFailureWarning, stacklevel=3)
        self._pending_warnings.clear()

    def _read_tail(self) -> None:
        """Read each counter on until it changes :data:`TAIL_CHANGES` more times.

        At most :data:`TAIL_UPDATES` updates.

        The job ended inside a counter update: until that update is complete, nothing read
        shows a load that stopped (or started) between the last change and the end; its
        counter delta does (400 W for a 1 s job idle over its last 10-50 ms read 3-8 J high
        with a ± of 1.3 J). The readings go into the timeline after the job's end; its curve
        keeps them out of the job's figure and takes those changes as the *tail*.
        Costs at most 2.5 updates (250 ms on NVML), read at the sampler's period.
        """
        if self._reader is None:
            return
        due = {
            d.name: d
            for d in self.devices
            if d.name not in self.failed
            and d.name not in self._reader.hung
            and 0 < d.update_period_s <= MAX_TAIL_UPDATE_S
            and self.timeline.counts_energy(d.name)
        }
        if not due:
            return
        seen = {name: self.timeline.last_energy(name) for name in due}
        step = max(min(self.period_s, min(d.update_period_s for d in due.values())), 1e-4)
        deadline = self.clock.now() + TAIL_UPDATES * max(d.update_period_s for d in due.values())
        token, never = object(), threading.Event()
        changes: dict[str, int] = {}
        while due and self.clock.now() + step <= deadline:
            self.clock.wait_until(token, self.clock.now() + step, never)
            outcomes, stuck = self._reader.read(list(due.values()), self.clock.now)
            for out in outcomes:
                name = out.device.name
                if out.reading is None or out.reading.energy_j is None:
                    due.pop(name, None)  # a failed read ends its tail: no gap after the job
                    continue
                self.timeline.add(name, out.t, out.reading)
                now_e = self.timeline.last_energy(name)
                if now_e != seen[name]:
                    changes[name] = changes.get(name, 0) + 1
                    seen[name] = now_e
                    if changes[name] >= TAIL_CHANGES:
                        due.pop(name)
            if stuck is not None:
                return

    def _note(self, name: str, message: str) -> None:
        log.warning("greenai: %s", message)
        self._pending_warnings.append(message)
