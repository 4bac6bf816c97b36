"""The Device interface every power/energy source implements.

A device is read by the sampler thread, never on the user's hot path. ``read()`` returns a
:class:`Reading`: a cumulative energy counter value (joules, monotonic, already unwrapped)
when the source has one, an instantaneous power value (watts) when it has one, or both.
How the timeline turns readings into energy depends on :attr:`Device.method`.
"""

from __future__ import annotations

import abc
import functools
import numbers
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

Method = Literal["counter", "power", "model"]
"""How an energy figure was obtained.

``counter``: deltas of a hardware energy counter. ``power``: integrated power samples.
``model``: estimated from utilisation and a TDP table, never measured.
"""

Kind = Literal["gpu", "cpu", "dram", "other"]

Scope = Literal["machine", "process"]
"""What a device's figure covers.

``machine``: everything the hardware drew. ``process``: the share of it attributed to one
process tree (see :mod:`greenai.devices.attribution`); still obtained by ``method``, but an
attribution, not a reading of what that process alone drew.
"""

# Each device's open/close bookkeeping has its own re-entrant lock (a subclass's open() that
# calls super().open() re-enters it on the same thread): an open() that hangs holds up only
# its own device, never the others being opened.
_SHARE_LOCK = threading.Lock()
_OPEN: weakref.WeakValueDictionary[int, Device] = weakref.WeakValueDictionary()  # by id()


def open_devices() -> list[Device]:
    """Devices opened and not yet closed, in this process (for leak checks in tests)."""
    with _SHARE_LOCK:
        return list(_OPEN.values())


def _lock_of(device: Device) -> threading.RLock:
    lock: threading.RLock | None = device.__dict__.get("_share_lock")
    if lock is None:
        with _SHARE_LOCK:
            lock = device.__dict__.setdefault("_share_lock", threading.RLock())
    return lock


def _shared_open(hook: Callable[[Device], None]) -> Callable[[Device], None]:
    """Wrap a class's open() so that only the first of several overlapping opens runs it."""

    @functools.wraps(hook)
    def open(self: Device) -> None:
        with _lock_of(self):
            if self._in_share_hook:  # super().open() from a subclass's open()
                hook(self)
                return
            if self._open_count == 0:
                self._in_share_hook = True
                try:
                    hook(self)
                finally:
                    self._in_share_hook = False
                with _SHARE_LOCK:
                    _OPEN[id(self)] = self
            self._open_count = self._open_count + 1

    open.__greenai_shared__ = True  # type: ignore[attr-defined]
    return open


def _shared_close(hook: Callable[[Device], None]) -> Callable[[Device], None]:
    """Wrap a class's close() so that only the last of several overlapping opens' closes runs it."""

    @functools.wraps(hook)
    def close(self: Device) -> None:
        with _lock_of(self):
            if self._in_share_hook:
                hook(self)
                return
            count = self._open_count
            if count == 0:  # never opened, or closed already: nothing to release
                return
            self._open_count = count - 1
            if count == 1:
                with _SHARE_LOCK:
                    _OPEN.pop(id(self), None)
                self._in_share_hook = True
                try:
                    hook(self)
                finally:
                    self._in_share_hook = False

    close.__greenai_shared__ = True  # type: ignore[attr-defined]
    return close


@dataclass(frozen=True)
class LoopSource:
    """How the native sampling loop reads one device: a RAPL file, or an NVML GPU by UUID."""

    kind: str  # "rapl" or "nvml"
    path: str = ""
    max_energy_range_uj: int = 0
    uuid: str = ""
    power: str = "none"
    energy_period_ns: int = 0


@dataclass(frozen=True)
class Capabilities:
    """What a device can do, declared by the device (never told from its class).

    Attributes:
        counter: It reads a hardware energy counter (``method == "counter"``).
        native_loop: The native sampling loop can read it (:meth:`Device.loop_source`).
        process_attribution: Its draw can be charged to a process tree
            (:func:`greenai.devices.attribution.apply_scope`).
        per_process_gpu: The driver reports per-process GPU use (NVML's process samples:
            :attr:`ShareInputs.nvml` is given).
    """

    counter: bool
    native_loop: bool
    process_attribution: bool
    per_process_gpu: bool


@dataclass(frozen=True)
class ShareInputs:
    """What a device offers for charging a process tree its share of what it draws.

    Declared by the device (:meth:`Device.share_inputs`) and read by
    :func:`greenai.devices.attribution.apply_scope`, which never tells devices apart by class:
    a new device kind is charged the right way by declaring these.

    Attributes:
        busy_cpu_s: Returns the busy CPU seconds so far (monotonic) of the CPUs the device
            covers: what a tree's CPU time is a share of. None: the whole machine's busy
            CPU time (a RAPL package covers every CPU).
        used_bytes: Returns the memory in use the device charges, in bytes: a memory device
            given this charges a tree its resident memory over it. None: a memory device is
            charged by CPU time instead (a DRAM counter: traffic follows CPU work).
        nvml: Returns the NVML module and the GPU's handle while the device is open, for
            NVML's per-process samples. None: the driver keeps no per-process use.
    """

    busy_cpu_s: Callable[[], float] | None = None
    used_bytes: Callable[[], float] | None = None
    nvml: Callable[[], tuple[ModuleType, Any]] | None = None


@dataclass(frozen=True)
class Reading:
    """One read of one device.

    Attributes:
        energy_j: Cumulative energy counter in joules (monotonic, wraparound already undone),
            or None when the device has no counter.
        power_w: Instantaneous (or model) power in watts, or None when the device gives none.
    """

    energy_j: float | None = None
    power_w: float | None = None


def checked_reading(value: object) -> Reading:
    """``value`` as a :class:`Reading` of plain floats (or None): the one validation boundary.

    Every reading a Python-read device returns passes here before any of it becomes a
    float in a timeline. A value may be None or a real number (int, float, numpy number;
    not bool, complex, str or a container); a NaN or infinity is kept as not read (the
    counter guard drops it); anything else, or a number no float can hold (``10**400``),
    rejects the whole read.

    Raises:
        DeviceReadError: ``value`` is not a Reading, or one of its values is not a number.
    """
    from greenai.errors import DeviceReadError

    if not isinstance(value, Reading):
        raise DeviceReadError(f"read() returned {type(value).__name__}, not a greenai Reading")
    out: list[float | None] = []
    for field in ("energy_j", "power_w"):
        raw = getattr(value, field, None)
        if raw is None:
            out.append(None)
            continue
        if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
            raise DeviceReadError(
                f"read() gave {field} of type {type(raw).__name__}, not a number of"
                f" {'joules' if field == 'energy_j' else 'watts'}"
            )
        try:
            number = float(raw)
        except BaseException as exc:
            raise DeviceReadError(
                f"read() gave {field} that is not a float ({type(exc).__name__})"
            ) from None
        out.append(number)
    return Reading(energy_j=out[0], power_w=out[1])


class Device(abc.ABC):
    """A source of power or energy readings.

    Constructors do no I/O: :meth:`open` acquires what the device needs, :meth:`read` reads,
    :meth:`close` releases. Subclasses set the class or instance attributes below.

    One device object may be measured by several trackers at once (nested trackers given
    the same devices), so opens are counted: the class wraps every subclass's ``open()``
    and ``close()`` so that only the first of overlapping opens and the last close run the
    subclass's code. A second tracker's open therefore resets nothing, and its close
    releases nothing the first still reads. Readings must not depend on when the device
    was opened (a counter reads an absolute value; each tracker keeps its own origin), and
    ``read()`` must be safe to call from two sampler threads.

    Attributes:
        name: Unique, stable name such as ``"gpu0"`` or ``"cpu0-package"``.
        kind: What hardware the figure covers.
        method: How energy is obtained from this device.
        update_period_s: How often the underlying source refreshes its value, in seconds.
            The sampler's default period follows the smallest of these.
        counter_resolution_j: Quantisation step of the energy counter, in joules.
        relative_uncertainty: Relative uncertainty (about 95% coverage) of energy integrated
            from this device's power values, used when no counter bounds them.
        counter_integrates: Whether the energy counter integrates every instant (True),
            adds up part-time power values (False), or that is not known (None, the
            default: the uncertainty then covers a part-time counter).
        power_limit_w: The power the device cannot exceed (W; NVML's enforced power limit),
            or None where not known. It bounds what a load may draw where no reading shows
            it (a loop locked to a part-time sensor's updates).
        power_window_s: How long each power value averages the load (s), or None where
            not known: 25 ms of each 100 ms update on A100 and H100, 20 ms on GH200 (Yang,
            Adámek and Armour, SC'24, arXiv:2312.02741). A load that swings faster than
            that is averaged away in the values, so their range does not bound it.
        may_hang: Whether a read can block (a driver or file read). The sampler reads such
            devices on a worker thread it can abandon; in-memory sources (the fakes) set
            False and are read inline, which keeps simulated days fast.
        uuid: The hardware's stable identity where its library gives one (a GPU's UUID
            from NVML or AMD SMI, ``GPU-...``), else None. Two processes that read the same
            device see the same UUID: a distributed job counts such a device once
            (:func:`greenai.distributed.device_id`).
    """

    name: str = "device"
    kind: Kind = "other"
    method: Method = "power"
    update_period_s: float = 0.1
    counter_resolution_j: float = 0.0
    relative_uncertainty: float = 0.05
    counter_integrates: bool | None = None
    power_limit_w: float | None = None
    power_window_s: float | None = None
    may_hang: bool = True
    uuid: str | None = None
    scope: Scope = "machine"
    _open_count: int = 0  # opens not yet matched by a close; set per instance when it changes
    _in_share_hook: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Count the opens of every subclass that defines its own open() or close()."""
        super().__init_subclass__(**kwargs)
        for attr, wrap in (("open", _shared_open), ("close", _shared_close)):
            hook = cls.__dict__.get(attr)
            if callable(hook) and not getattr(hook, "__greenai_shared__", False):
                setattr(cls, attr, wrap(hook))

    @property
    def open_count(self) -> int:
        """How many opens are not yet matched by a close (0: closed)."""
        return int(self._open_count)

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources. Raises DeviceError when the device cannot be used."""

    @abc.abstractmethod
    def read(self) -> Reading:
        """Read the device now. Raises DeviceReadError when this read fails."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Never raises."""

    def loop_source(self) -> LoopSource | None:
        """How the native sampling loop can read this device (after :meth:`open`).

        None (the default): the Python sampler reads it with :meth:`read`.
        """
        return None

    def capabilities(self) -> Capabilities:
        """What this device can do (after :meth:`open` for what only opening tells)."""
        return Capabilities(
            counter=self.method == "counter",
            native_loop=self.loop_source() is not None,
            process_attribution=self.kind in ("gpu", "cpu", "dram"),
            per_process_gpu=self.share_inputs().nvml is not None,
        )

    def share_inputs(self) -> ShareInputs:
        """What this device offers for charging a process tree its share (none by default).

        See :class:`ShareInputs`; override to declare a device's own inputs.
        """
        return ShareInputs()

    def describe(self) -> dict[str, Any]:
        """Return what this device is and how it is measured, for `greenai devices`."""
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "scope": self.scope,
            "update_period_s": self.update_period_s,
            "detail": self.detail(),
        }

    def detail(self) -> str:
        """One line on the source (model name, sysfs path, TDP used, ...)."""
        return type(self).__name__

    def __repr__(self) -> str:
        scope = "" if self.scope == "machine" else f" scope={self.scope}"
        return f"<{type(self).__name__} {self.name} method={self.method}{scope}>"


# Device's own no-op hooks are counted too: a subclass that defines only close() must still
# see its opens counted, or its close would never run.
Device.open = _shared_open(Device.open)  # type: ignore[method-assign,assignment]
Device.close = _shared_close(Device.close)  # type: ignore[method-assign,assignment]
