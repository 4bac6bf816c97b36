"""Read Python devices on a worker thread, so a read that hangs can be abandoned.

A device read that never returns (a wedged driver, a stuck file system) must not stop the
sampler, the other devices, or ``stop()``. The sampler hands each tick's reads to a
:class:`ReadWorker` and waits at most ``timeout_s``: when a read overruns, the device is set
aside (a gap is recorded) until that read returns, the worker is abandoned (a daemon thread,
still waiting in the device), and a fresh worker reads the others on the next tick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from greenai.devices.base import Device, Reading, checked_reading

__all__ = ["ReadOutcome", "ReadWorker"]


@dataclass
class ReadOutcome:
    """What one read gave: the reading or the exception, and when it was taken."""

    device: Device
    t: float
    reading: Reading | None = None
    error: BaseException | None = None


@dataclass
class _Job:
    devices: Sequence[Device]
    now: Callable[[], float]
    done: threading.Event = field(default_factory=threading.Event)
    outcomes: list[ReadOutcome] = field(default_factory=list)
    current: Device | None = None


class ReadWorker:
    """A daemon thread that reads a batch of devices when asked."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.hung: set[str] = set()  # devices whose read has not come back
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._job: _Job | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def read(
        self, devices: Sequence[Device], now: Callable[[], float]
    ) -> tuple[list[ReadOutcome], Device | None]:
        """Read ``devices`` in order; return the outcomes and the device that hung (if any)."""
        inline = [d for d in devices if not d.may_hang]
        outcomes = [_read(d, now) for d in inline]
        todo = [d for d in devices if d.may_hang and d.name not in self.hung]
        if not todo:
            return outcomes, None
        job = _Job(todo, now)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="greenai-reader", daemon=True
                )
                self._thread.start()
            self._job = job
            self._wake.notify()
        if job.done.wait(self.timeout_s):
            return outcomes + job.outcomes, None
        with self._lock:  # overran: abandon this thread where it is
            stuck = job.current
            if self._job is job:
                self._job = None
            self._thread = None
            done = list(job.outcomes)
        if stuck is not None:
            self.hung.add(stuck.name)
        return outcomes + done, stuck

    def close(self) -> None:
        """Let the worker end (a hung one ends when its read returns)."""
        with self._lock:
            self._closed = True
            self._wake.notify_all()

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                while self._job is None and not self._closed and self._thread is me:
                    self._wake.wait()
                if self._closed or self._thread is not me:
                    return
                job = self._job
                self._job = None
            assert job is not None
            for device in job.devices:
                job.current = device
                outcome = _read(device, job.now)
                with self._lock:
                    if self._thread is not me:  # abandoned while reading: drop the value
                        self.hung.discard(device.name)
                        return
                job.outcomes.append(outcome)
            job.current = None
            job.done.set()


def _read(device: Device, now: Callable[[], float]) -> ReadOutcome:
    """Read ``device`` once: a checked Reading of floats, or the exception.

    Anything a read raises is a failed read, noted by the sampler: ``SystemExit`` and
    ``KeyboardInterrupt`` from the device's own code too (off the main thread they can
    only come from there). A Reading with values that are not numbers is a failed read
    (:func:`~greenai.devices.base.checked_reading`).
    """
    before = now()
    try:
        reading = checked_reading(device.read())
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and _on_main_thread():
            raise  # the user's Ctrl-C, not the device's
        return ReadOutcome(device, before, error=exc)
    return ReadOutcome(device, (before + now()) / 2.0, reading=reading)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
