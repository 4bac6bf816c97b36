"""Clocks: the time source and the wait the sampler uses, injectable for tests.

The system clock uses :func:`time.perf_counter`. :class:`greenai.testing.FakeClock` gives
exact, sleep-free tests of the real sampler thread.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the sampler and tracker need of a clock."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def attach(self, token: object) -> None:
        """A sampler thread is about to start waiting on this clock."""
        ...

    def detach(self, token: object) -> None:
        """That sampler thread has ended."""
        ...

    def wait_until(self, token: object, deadline: float, stop: threading.Event) -> bool:
        """Block until ``now() >= deadline`` or ``stop`` is set; return whether it was set."""
        ...


class SystemClock:
    """The real monotonic clock."""

    now = staticmethod(time.perf_counter)

    def attach(self, token: object) -> None:
        """Nothing to do for real time."""

    def detach(self, token: object) -> None:
        """Nothing to do for real time."""

    def wait_until(self, token: object, deadline: float, stop: threading.Event) -> bool:
        """Wait on the stop event, so stopping is immediate."""
        return stop.wait(max(0.0, deadline - time.perf_counter()))


SYSTEM_CLOCK = SystemClock()
