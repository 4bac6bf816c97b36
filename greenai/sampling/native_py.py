"""The sampling loop in pure Python: the twin of ``greenai._native`` (``kernels/native.c``).

Both implementations have one API (``greenai/_native.pyi``) and pass the same tests
(``tests/sampling/test_native_loop.py``), so they cannot drift. This one is the fallback
where the C extension is not built, and the baseline the benchmarks compare against: its
thread needs the GIL for every tick.

Records are 32 bytes, laid out as :data:`RECORD_DTYPE`; :meth:`Loop.drain` returns them as
``bytes``. ``status`` is 0 for a good read, ``-errno`` for a failed RAPL read (``-EBADMSG``
for unparsable contents) and the NVML return code for a failed NVML read.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import threading
import time
import weakref

import numpy as np

from greenai.errors import (
    ConfigError,
    DeviceError,
    DeviceUnavailableError,
    DriverMismatchError,
    TrackerStateError,
)
from greenai.sampling.nvml_ctypes import FI_DEV_POWER_INSTANT, FieldValue, NvmlApi, field_as_float

__all__ = ["MAX_PERIOD_NS", "MIN_PERIOD_NS", "RECORD_DTYPE", "RECORD_SIZE", "Loop"]

RECORD_DTYPE = np.dtype(
    [
        ("t_ns", "<i8"),  # CLOCK_MONOTONIC (time.monotonic_ns), middle of the read
        ("source", "<i4"),  # index returned by add_rapl / add_nvml
        ("status", "<i4"),  # 0 ok, -errno (RAPL), NVML return code (NVML)
        ("energy_j", "<f8"),  # cumulative energy, NaN when not read on this tick
        ("power_w", "<f8"),  # instant power, NaN when the source has none
    ]
)
RECORD_SIZE = RECORD_DTYPE.itemsize
MIN_PERIOD_NS = 1_000_000
MAX_PERIOD_NS = 3_600_000_000_000  # 1 hour
_NAN = float("nan")
_loops: weakref.WeakSet[Loop] = weakref.WeakSet()
_nvml_apis: dict[str, NvmlApi] = {}  # loaded once per process and path, never unloaded
_nvml_lock = threading.Lock()


def _load_nvml(lib: str) -> NvmlApi:
    """The NVML entry points of ``lib``, loaded on first use (as ``load_nvml`` in the C loop)."""
    with _nvml_lock:
        api = _nvml_apis.get(lib)
        if api is None:
            api = _nvml_apis[lib] = NvmlApi(lib)
        return api


def _parse_uj(raw: bytes) -> int | None:
    text = raw[:-1] if raw.endswith(b"\n") else raw
    return int(text) if text.isdigit() and text.isascii() else None


class _Source:
    """One source's state: a RAPL file or an NVML device handle."""

    __slots__ = (
        "energy_every",
        "fd",
        "handle",
        "kind",
        "last_uj",
        "next_energy",
        "power",
        "total_uj",
        "wrap_uj",
    )

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.fd = -1
        self.last_uj = self.total_uj = self.wrap_uj = 0
        self.handle: ctypes.c_void_p | None = None
        self.power = "none"
        self.energy_every = 0
        self.next_energy = 0


class Loop:
    """Reads its sources every ``period_ns`` on a Python thread; see ``greenai/_native.pyi``."""

    def __init__(self, period_ns: int = 10_000_000, *, capacity: int = 65536) -> None:
        if period_ns < MIN_PERIOD_NS:
            raise ConfigError(
                f"period_ns must be at least {MIN_PERIOD_NS} (1 ms), got {period_ns}; the loop "
                "reads every source on each tick"
            )
        if period_ns > MAX_PERIOD_NS:
            raise ConfigError(
                f"period_ns must be at most {MAX_PERIOD_NS} (1 hour), got {period_ns}; pass "
                "nanoseconds"
            )
        if not 16 <= capacity <= 1 << 26:
            raise ConfigError(f"capacity must be 16..{1 << 26} records, got {capacity}")
        cap = 16
        while cap < capacity:
            cap <<= 1
        self._period_ns = int(period_ns)
        self._ring = np.zeros(cap, dtype=RECORD_DTYPE)
        self._mask = cap - 1
        self._head = self._tail = self._overflow = 0
        self._sources: list[_Source] = []
        self._nvml: NvmlApi | None = None
        self._nvml_inits = 0  # successful nvmlInit calls this loop owes a shutdown for
        self._tick_lock = threading.Lock()
        # start/stop/tick/add/close run one at a time (as the C loop's op_begin/op_end).
        self._life = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._forked = self._closed = False
        self.abandoned = False
        """Whether stop() left behind a thread stuck in a read (then the loop stays closed)."""
        self._start_ns = self._tick_index = 0
        self._ticks = self._missed = self._late_max_ns = self._late_sum_ns = self._cpu_ns = 0
        _loops.add(self)

    # --- properties -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and not self._forked

    @property
    def period_ns(self) -> int:
        """The period in nanoseconds."""
        return self._period_ns

    @property
    def overflow(self) -> int:
        """Records dropped because the buffer was full."""
        return self._overflow

    @property
    def capacity(self) -> int:
        """Ring buffer size in records."""
        return self._mask + 1

    # --- adding sources -------------------------------------------------------------------
    def _check_usable(self, what: str) -> None:
        if self._forked:
            raise TrackerStateError(
                "this sampling loop was inherited through fork(); create a new one in the "
                f"child process before calling {what}()"
            )
        if self._closed:
            raise TrackerStateError("the sampling loop is closed; create a new one")

    def _check_idle(self, what: str) -> None:
        self._check_usable(what)
        if self._thread is not None:
            raise TrackerStateError(
                f"{what}() is not allowed while the loop runs (or was started by another "
                "thread); stop() it"
            )

    def add_rapl(self, path: str | os.PathLike[str], max_energy_range_uj: int) -> int:
        """Add a RAPL ``energy_uj`` file (opened once, read with pread); return its index."""
        with self._life:
            return self._add_rapl(path, max_energy_range_uj)

    def _add_rapl(self, path: str | os.PathLike[str], max_energy_range_uj: int) -> int:
        self._check_idle("add_rapl")
        path = os.fspath(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            cls = DeviceUnavailableError if e.errno == errno.ENOENT else DeviceError
            raise cls(f"cannot open RAPL counter {path}: {os.strerror(e.errno or 0)}") from e
        try:
            first = _parse_uj(os.pread(fd, 31, 0))
        except OSError as e:
            os.close(fd)
            raise DeviceError(f"cannot read RAPL counter {path}: {e.strerror}") from e
        if first is None:
            os.close(fd)
            raise DeviceError(f"cannot read RAPL counter {path}: {os.strerror(errno.EBADMSG)}")
        s = _Source("rapl")
        s.fd, s.last_uj, s.total_uj = fd, first, 0
        s.wrap_uj = int(max_energy_range_uj) + 1  # the counter takes values 0..max range
        self._sources.append(s)
        return len(self._sources) - 1

    def add_nvml(
        self,
        device: int | str,
        *,
        power: str = "instant",
        energy_period_ns: int = 100_000_000,
        lib: str | None = None,
    ) -> int:
        """Add an NVIDIA GPU by NVML index or UUID; return its index (see the stub)."""
        with self._life:
            return self._add_nvml(device, power, energy_period_ns, lib)

    def _add_nvml(
        self, device: int | str, power: str, energy_period_ns: int, lib: str | None
    ) -> int:
        self._check_idle("add_nvml")
        if power not in ("instant", "average", "none"):
            raise ConfigError(f"power must be 'instant', 'average' or 'none', got '{power}'")
        if energy_period_ns < 0:
            raise ConfigError("energy_period_ns must be >= 0 (0: no energy counter)")
        if isinstance(device, int) and not 0 <= device <= 0xFFFFFFFF:
            raise ConfigError(
                "NVML index must be 0..4294967295 (a GPU's index as nvidia-smi lists it)"
            )
        if not isinstance(device, int | str):
            raise TypeError("device must be an NVML index (int) or a UUID (str)")
        lib = lib or os.environ.get("GREENAI_NVML_LIB") or "libnvidia-ml.so.1"
        nvml = _load_nvml(lib)
        needed = {"instant": nvml.fields, "average": nvml.power, "none": True}[power]
        if needed is None or (energy_period_ns > 0 and nvml.energy is None):
            raise DriverMismatchError(
                f"{lib} lacks the NVML function for the requested reading; update the NVIDIA driver"
            )
        if self._nvml is not None and self._nvml is not nvml:
            raise ConfigError(
                f"this loop already reads NVML through {self._nvml.lib}; use one loop per NVML "
                "library"
            )
        ret = nvml.init()
        if ret:
            raise DeviceError(f"cannot initialise NVML: NVML error {ret}: {nvml.error(ret)}")
        self._nvml = nvml
        self._nvml_inits += 1
        handle = ctypes.c_void_p()
        if isinstance(device, int):
            desc = f"index {device}"
            ret = nvml.by_index(ctypes.c_uint(device), ctypes.byref(handle))
        else:
            desc = device
            ret = nvml.by_uuid(device.encode(), ctypes.byref(handle))
        if ret:
            raise DeviceError(f"cannot find NVIDIA GPU {desc}: NVML error {ret}: {nvml.error(ret)}")
        s = _Source("nvml")
        s.handle, s.power = handle, power
        if energy_period_ns > 0:
            s.energy_every = max(1, energy_period_ns // self._period_ns)
        self._sources.append(s)
        return len(self._sources) - 1

    # --- reading --------------------------------------------------------------------------
    def _read_rapl(self, s: _Source) -> tuple[int, float, float]:
        try:
            raw = _parse_uj(os.pread(s.fd, 31, 0))
        except OSError as e:
            return -(e.errno or errno.EIO), _NAN, _NAN
        if raw is None:
            return -errno.EBADMSG, _NAN, _NAN
        delta = raw - s.last_uj if raw >= s.last_uj else raw + s.wrap_uj - s.last_uj
        s.total_uj += delta
        s.last_uj = raw
        return 0, s.total_uj * 1e-6, _NAN

    def _read_nvml(self, s: _Source, tick: int) -> tuple[int, float, float]:
        nvml = self._nvml
        assert nvml is not None
        energy_j = power_w = _NAN
        if s.energy_every and tick >= s.next_energy:
            mj = ctypes.c_ulonglong()
            ret = nvml.energy(s.handle, ctypes.byref(mj))
            if ret:
                return ret, _NAN, _NAN
            energy_j = mj.value / 1000.0
            s.next_energy = (tick // s.energy_every + 1) * s.energy_every
        if s.power == "instant":
            f = FieldValue(fieldId=FI_DEV_POWER_INSTANT)
            ret = nvml.fields(s.handle, ctypes.c_int(1), ctypes.byref(f)) or f.nvmlReturn
            if ret:
                return ret, _NAN, _NAN
            power_w = field_as_float(f) / 1000.0
        elif s.power == "average":
            mw = ctypes.c_uint()
            ret = nvml.power(s.handle, ctypes.byref(mw))
            if ret:
                return ret, _NAN, _NAN
            power_w = mw.value / 1000.0
        return 0, energy_j, power_w

    def _do_tick(self, tick: int) -> None:
        now = time.monotonic_ns
        ring, mask = self._ring, self._mask
        for i, s in enumerate(self._sources):
            idle = not (s.energy_every and tick >= s.next_energy)
            if s.kind == "nvml" and s.power == "none" and idle:
                continue
            before = now()
            if s.kind == "rapl":
                status, energy_j, power_w = self._read_rapl(s)
            else:
                status, energy_j, power_w = self._read_nvml(s, tick)
            t_ns = before + (now() - before) // 2
            if self._head - self._tail > mask:
                self._overflow += 1
                continue
            ring[self._head & mask] = (t_ns, i, status, energy_j, power_w)
            self._head += 1

    def _sync_tick(self, all_energy: bool = False) -> None:
        with self._tick_lock:
            if all_energy:  # the window's last reading carries every energy counter
                for s in self._sources:
                    if s.energy_every:
                        s.next_energy = self._tick_index
            self._do_tick(self._tick_index)

    def _run(self) -> None:
        period, tick = self._period_ns, self._tick_index
        deadline = self._start_ns + tick * period
        now = time.monotonic_ns
        while not self._stop.wait(max(0, deadline - now()) * 1e-9):
            late = now() - deadline
            if late < 0:  # Event.wait may return a hair early; the grid is absolute
                continue
            self._late_sum_ns += late
            self._late_max_ns = max(self._late_max_ns, late)
            with self._tick_lock:
                self._do_tick(tick)
            self._ticks += 1
            tick += 1
            deadline += period
            current = now()
            if current >= deadline:  # overran: skip the grid points already past
                skip = (current - deadline) // period + 1
                self._missed += skip
                tick += skip
                deadline += skip * period
        self._tick_index = tick
        self._cpu_ns += time.thread_time_ns()

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Read every source once, then start the thread."""
        with self._life:
            self._start()

    def _start(self) -> None:
        self._check_idle("start")
        self._stop.clear()
        self._tick_index = 0
        for s in self._sources:
            s.next_energy = 0
        self._start_ns = time.monotonic_ns()
        self._sync_tick()
        self._tick_index = 1
        self._thread = threading.Thread(target=self._run, name="greenai-sampler", daemon=True)
        self._thread.start()

    def _stop_thread(self) -> None:
        """Join the thread, if any, for two periods (at least 1 s); the caller holds ``_life``.

        A thread stuck in a read past that is left behind (a daemon) and the loop is
        :attr:`abandoned`: it takes no last reading and is closed for good.
        """
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(max(2 * self.period_ns / 1e9, 1.0))
        if self._thread.is_alive():
            self.abandoned = True
            self._closed = True
        self._thread = None

    def stop(self) -> None:
        """Stop the thread, then read every source once more. Idempotent."""
        with self._life:
            if self._forked or self._closed or self._thread is None:
                return
            self._stop_thread()
            if not self.abandoned:
                self._sync_tick(all_energy=True)

    def tick(self) -> None:
        """Read every source once, now (not while the thread runs)."""
        with self._life:
            self._check_idle("tick")
            self._sync_tick()
            self._tick_index += 1

    def drain(self) -> bytes:
        """Take every buffered record, oldest first, as bytes of :data:`RECORD_DTYPE`."""
        tail, head, mask = self._tail, self._head, self._mask
        first, n = tail & mask, head - tail
        run1 = min(n, mask + 1 - first)
        out = self._ring[first : first + run1].tobytes() + self._ring[: n - run1].tobytes()
        self._tail = head
        return out

    def close(self) -> None:
        """Stop the thread and release the files and NVML. Idempotent."""
        with self._life:
            self._close()

    def _close(self) -> None:
        if self._closed:
            return
        if not self._forked:
            self._stop_thread()
        for s in self._sources:
            if s.fd >= 0:
                os.close(s.fd)
        self._sources.clear()
        if self._nvml is not None and not self._forked:
            for _ in range(self._nvml_inits):
                self._nvml.shutdown()
        self._nvml_inits = 0
        self._nvml = None
        self._closed = True

    def stats(self) -> dict[str, int]:
        """Counters: ticks, missed, overflow, late_max_ns, late_sum_ns, cpu_ns, sources."""
        cpu = self._cpu_ns
        thread = self._thread
        if thread is not None and thread.ident is not None and not self._stop.is_set():
            with contextlib.suppress(OSError):  # the thread may be just ending
                cpu += time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))
        return {
            "ticks": self._ticks,
            "missed": self._missed,
            "overflow": self._overflow,
            "late_max_ns": self._late_max_ns,
            "late_sum_ns": self._late_sum_ns,
            "cpu_ns": cpu,
            "sources": len(self._sources),
        }

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    def _after_fork_in_child(self) -> None:
        self._forked = True
        self._thread = None
        self._tick_lock = threading.Lock()
        self._life = threading.Lock()
        self._head = self._tail = 0


def _stop_all() -> None:
    """Stop every loop's thread (at interpreter exit)."""
    for loop in list(_loops):
        with loop._life:
            if not loop._forked:
                loop._stop_thread()


def _after_fork_in_child() -> None:
    for loop in list(_loops):
        loop._after_fork_in_child()


atexit.register(_stop_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
