"""Read RAPL and NVIDIA devices through a sampling loop and hand the readings to a timeline.

:class:`~greenai.sampling.Sampler` uses a :class:`NativeFeed` for the devices a loop can
read itself (:func:`loop_source`), so their reads run on the loop's thread, never under the
GIL (with the C loop), at a steady period. Python then only drains the buffered records now
and then. Every other device is still read by the sampler's Python thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from greenai.clock import Clock, SystemClock
from greenai.devices.base import Device, LoopSource
from greenai.errors import GreenAIError
from greenai.sampling import native_py
from greenai.sampling.decimate import STORE_PERIOD_S, decimate
from greenai.sampling.native import (
    MIN_PERIOD_NS,
    RECORD_DTYPE,
    SamplingLoop,
    describe_status,
    loop_class,
    to_clock_s,
)
from greenai.timeline import Timeline

log = logging.getLogger("greenai")

DRAIN_PERIOD_S = 0.2
"""How often the sampler's Python thread drains the loop when it has nothing else to read."""

NATIVE_PERIOD_S = 0.01
"""The native loop's default period (seconds): its reads are cheap and never take the GIL."""

Note = Callable[[str, str], None]


def loop_source(device: Device) -> LoopSource | None:
    """What a loop must read for ``device`` (after its ``open()``), or None if it cannot.

    The device says so itself (:meth:`greenai.devices.base.Device.loop_source`).
    """
    return device.loop_source()


class NativeFeed:
    """Devices read by one sampling loop, drained into a :class:`Timeline`.

    Args:
        loop: A loop (C or Python twin) with no sources yet.
        timeline: Where readings go; each device needs a series (``timeline.ensure``).
        note: Called with ``(device name, message)`` for a warning the run must report.
        store_period_s: Readings are thinned to a few per device per this many seconds
            before they are stored, losing no counter energy (:mod:`.decimate`); 0 keeps
            every reading.
    """

    def __init__(
        self,
        loop: SamplingLoop,
        timeline: Timeline,
        note: Note,
        *,
        store_period_s: float = STORE_PERIOD_S,
    ) -> None:
        self.loop = loop
        self.timeline = timeline
        self.names: list[str] = []
        self.failed: dict[str, str] = {}
        self.store_period_s = store_period_s
        self._note = note
        self._closed = False
        self._fresh: set[str] = set()  # devices whose next reading starts a run

    def add(self, device: Device, source: LoopSource | None = None) -> bool:
        """Let the loop read ``device``; return False (nothing added) where it cannot."""
        source = source or loop_source(device)
        if source is None:
            return False
        try:
            if source.kind == "rapl":
                self.loop.add_rapl(source.path, source.max_energy_range_uj)
            else:
                self.loop.add_nvml(
                    source.uuid, power=source.power, energy_period_ns=source.energy_period_ns
                )
        except (GreenAIError, OSError) as exc:  # the Python path still reads it
            log.info("greenai: %s is read by Python, not the native loop: %s", device.name, exc)
            return False
        self.names.append(device.name)
        self._fresh.add(device.name)
        return True

    def start(self) -> None:
        """Read every device once and start the loop's thread."""
        self.loop.start()

    def drain(self, *, final: bool = False) -> None:
        """Move the buffered readings into the timeline (and note failures).

        Args:
            final: The loop has stopped: each device's last reading ends the window.
        """
        if self._closed:
            return
        raw = self.loop.drain()
        if not raw:
            return
        rec = np.frombuffer(raw, dtype=RECORD_DTYPE)
        t = to_clock_s(0) + rec["t_ns"] * 1e-9
        for index in np.unique(rec["source"]):
            mine = np.flatnonzero(rec["source"] == index)
            name = self.names[int(index)]
            bad = mine[rec["status"][mine] != 0]
            start = 0
            for b in bad:  # good runs go in; each failure opens a gap
                good = mine[start : np.searchsorted(mine, b)]
                self._extend(name, t[good], rec[good], ends_run=True)
                self._fail(name, float(t[b]), int(rec["status"][b]))
                start = int(np.searchsorted(mine, b)) + 1
            self._extend(name, t[mine[start:]], rec[mine[start:]], ends_run=final)

    def _extend(self, name: str, t: np.ndarray, rec: np.ndarray, *, ends_run: bool) -> None:
        if not len(t):
            return
        first = name in self._fresh
        self._fresh.discard(name)
        kept = decimate(
            t,
            rec["energy_j"],
            rec["power_w"],
            self.store_period_s,
            keep_first=first,
            keep_last=ends_run,
        )
        self.timeline.extend(name, *kept)

    def _fail(self, name: str, t: float, status: int) -> None:
        self.timeline.mark_failure(name, t)
        self._fresh.add(name)
        if name not in self.failed:
            self.failed[name] = describe_status(status)
            self._note(
                name,
                f"{name} failed mid-run ({describe_status(status)}); the other devices are "
                "still measured, the gap is recorded and the result is marked partial",
            )

    def stop(self) -> None:
        """Stop the thread, take the last reading, drain, and release the loop."""
        if self._closed:
            return
        self.loop.stop()
        self.drain(final=True)
        if getattr(self.loop, "abandoned", False):
            why = (
                "a read in the native sampling loop did not return within two periods (at"
                " least 1 s); the loop was left behind and takes no last reading"
            )
            for name in self.names:
                self.timeline.mark_failure(name, self.timeline.last_time(name))
                self.failed.setdefault(name, why)
            self._note("native-loop", why)
        dropped = self.loop.overflow
        if dropped:
            self._note(
                "native-loop",
                f"the sampling loop dropped {dropped} readings because its buffer was full "
                "(Python drained it too late); counters still bound the energy across the "
                "gap, but its power shape is coarser",
            )
        self.loop.close()
        self._closed = True


def start_feed(
    devices: list[Device],
    timeline: Timeline,
    *,
    period_s: float,
    clock: Clock,
    native: bool | None,
    note: Note,
) -> tuple[NativeFeed | None, list[Device]]:
    """Start a feed for the devices a loop can read; return it and the devices left to Python.

    Args:
        devices: Opened devices with series in ``timeline``.
        timeline: Where readings go.
        period_s: The loop's period (seconds); outside 1 ms..1 h only the Python sampler runs.
        clock: The sampler's clock; only the real one can drive a loop.
        native: None: the C loop where built and not disabled (``GREENAI_NO_NATIVE``);
            True: the C loop (ConfigError when not built); False: no loop at all.
        note: Where warnings go, as for :class:`NativeFeed`.
    """
    if native is False or not isinstance(clock, SystemClock):
        return None, devices
    cls = loop_class(native)
    if cls is native_py.Loop:
        return None, devices  # the Python twin brings nothing over the Sampler's own thread
    period_ns = round(period_s * 1e9)
    sources = [loop_source(d) for d in devices]
    if not MIN_PERIOD_NS <= period_ns <= native_py.MAX_PERIOD_NS or not any(sources):
        return None, devices
    feed = NativeFeed(cls(period_ns), timeline, note)
    rest = [d for d, s in zip(devices, sources, strict=True) if s is None or not feed.add(d, s)]
    if not feed.names:
        feed.loop.close()
        return None, devices
    feed.start()
    return feed, rest
