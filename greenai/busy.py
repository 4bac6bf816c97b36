"""Other processes' CPU time during a job measured in machine scope: when large, say so.

In machine scope (the default) a CPU's or memory's energy is what the hardware drew,
whoever used it. On a busy machine that charges other jobs' work to this one: the demo read
1,594 J under load against 149 J alone for the same work (issue 23). This module compares
the machine's busy CPU time with the tracked process tree's over the job; when other
processes used over :data:`BUSY_SHARE` of the machine's CPU time, the result gets a note (and
one warning) that names ``scope="process"`` and the figure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BUSY_SHARE", "MIN_WALL_S", "CpuWatch", "busy_note"]

BUSY_SHARE = 1.0 / 3.0
"""Other processes' share of the machine's CPU time (all CPUs × the job's wall time) above
which a machine-scope job says its CPU figures include them."""

MIN_WALL_S = 1.0
"""Jobs shorter than this (wall time) are not judged: the kernel counts CPU time in ticks."""


def busy_note(share: float) -> str:
    """The note for a machine-scope job during which other processes used ``share`` (0..1)."""
    return (
        f"other processes used {share:.0%} of this machine's CPU time during the job: in "
        "scope='machine' (the default) the CPU and memory figures include their work; "
        'track(scope="process") (greenai run --scope process) charges this process tree '
        "its share instead"
    )


@dataclass
class CpuWatch:
    """Other processes' share of the machine's CPU time between :meth:`start` and :meth:`share`.

    Args:
        own_cpu_s: Cumulative CPU seconds of the tracked process tree.
        busy_cpu_s: Cumulative busy CPU seconds of the whole machine.
        cpus: CPUs of the machine.
        wall_s: A wall clock (s); the real one, whatever clock the tracker uses.
    """

    own_cpu_s: Callable[[], float]
    busy_cpu_s: Callable[[], float]
    cpus: int
    wall_s: Callable[[], float] = time.monotonic
    _start: tuple[float, float, float] | None = field(default=None, repr=False)

    @classmethod
    def for_process(cls, pid: int | None = None) -> CpuWatch:
        """Watch this machine and the process tree rooted at ``pid`` (this process)."""
        from greenai.devices.attribution import machine_busy_cpu_s, tree_cpu_seconds

        root = os.getpid() if pid is None else pid
        return cls(lambda: tree_cpu_seconds(root), machine_busy_cpu_s, os.cpu_count() or 1)

    def start(self) -> None:
        """Take the starting point."""
        self._start = (self.own_cpu_s(), self.busy_cpu_s(), self.wall_s())

    def share(self) -> float | None:
        """Other processes' CPU seconds over the machine's CPU seconds since :meth:`start`.

        None before :meth:`start` or for a job shorter than :data:`MIN_WALL_S`.
        """
        if self._start is None:
            return None
        own0, busy0, wall0 = self._start
        wall = self.wall_s() - wall0
        if wall < MIN_WALL_S:
            return None
        other = (self.busy_cpu_s() - busy0) - (self.own_cpu_s() - own0)
        return max(0.0, other) / (wall * max(self.cpus, 1))

    def note(self) -> str | None:
        """:func:`busy_note` when other processes used over :data:`BUSY_SHARE`, else None."""
        share = self.share()
        return busy_note(share) if share is not None and share > BUSY_SHARE else None
