"""CPU power estimated from utilisation and the CPU's TDP: a model, never a measurement.

Used where RAPL is missing or unreadable (VMs, containers, non-root users). The TDP comes
from codecarbon's ``data/hardware/cpu_power.csv``, read in place without importing
codecarbon (importing it is slow).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import os
import platform
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from greenai.devices.base import Device, Reading, ShareInputs
from greenai.devices.cgroup import (
    DEFAULT_CGROUP_ROOT,
    CpuAllowance,
    cgroup_cpu_usage_s,
    cpu_allowance,
)
from greenai.errors import ConfigError, DeviceReadError

__all__ = [
    "DEFAULT_TDP_W",
    "DEFAULT_W_PER_CPU",
    "CpuInfo",
    "CpuModel",
    "CpuUtilisation",
    "codecarbon_cpu_power_csv",
    "lookup_tdp_w",
    "read_cpuinfo",
    "tdp_table",
]

DEFAULT_TDP_W = 85.0
"""codecarbon's POWER_CONSTANT (W per socket); greenai uses :data:`DEFAULT_W_PER_CPU` instead."""

DEFAULT_W_PER_CPU = 4.0
"""Watts per logical CPU at full load for a CPU whose TDP or socket size is unknown:
codecarbon's ``DEFAULT_POWER_PER_CORE`` ("4 W per thread", codecarbon/core/cpu.py)."""

_NOISE = [
    re.compile(r"\([^)]*\)|[®™]"),  # (R), (TM), and table notes like "(OEM Only)"
    re.compile(r"@.*"),  # "@ 2.10GHz" and anything after it
    re.compile(r"\b\d+(\.\d+)?\s*[gm]hz\b"),
    re.compile(r"\b(cpu|processor)\b"),
    re.compile(r"\b(\d+|dual|quad|six|eight|twelve|sixteen)-core\b"),
]


def _tokens(cpu_name: str) -> tuple[str, ...]:
    """Normalise a brand string or table name into comparable tokens."""
    text = cpu_name.lower()
    for pattern in _NOISE:
        text = pattern.sub(" ", text)
    return tuple(text.replace(",", " ").split())


def codecarbon_cpu_power_csv() -> Path | None:
    """Where codecarbon's CPU TDP table (``data/hardware/cpu_power.csv``) is, or None.

    Found without importing codecarbon; None when it is not installed.
    """
    spec = importlib.util.find_spec("codecarbon")  # locates without importing
    for location in (spec and spec.submodule_search_locations) or []:
        path = Path(location, "data", "hardware", "cpu_power.csv")
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=1)
def tdp_table() -> dict[tuple[str, ...], tuple[float, str]]:
    """The CPU TDP table of codecarbon, as :func:`lookup_tdp_w` reads it.

    Normalised name tokens to (TDP per socket in W, table name); empty without codecarbon.
    Read once and cached (``tdp_table.cache_clear()`` reads it again). Rows without a
    numeric TDP, and names with no digit (which would match on vendor words alone), are
    left out; of duplicate names the first row wins.
    """
    path = codecarbon_cpu_power_csv()
    if path is None:
        return {}
    table: dict[tuple[str, ...], tuple[float, str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                tdp_w = float(row["TDP"])
            except (KeyError, TypeError, ValueError):
                continue
            tokens = _tokens(row["Name"] or "")
            # A name with no digit ("Intel Aubrey Isle") would match on vendor words alone.
            if any(ch.isdigit() for ch in "".join(tokens)):
                table.setdefault(tokens, (tdp_w, row["Name"]))  # first row wins
    return table


@functools.lru_cache(maxsize=64)
def lookup_tdp_w(cpu_name: str) -> tuple[float, str] | None:
    """Find a CPU's TDP in codecarbon's table.

    A table name matches when its normalised tokens appear, in order and contiguous, in the
    normalised brand string; the longest match wins, so "Intel(R) Xeon(R) CPU E5-2680 v4 @
    2.40GHz" picks "Intel Xeon E5-2680 v4" over "Intel Xeon E5-2680".

    Args:
        cpu_name: A brand string such as /proc/cpuinfo's "model name".

    Returns:
        (TDP per socket in watts, matched table name), or None when nothing matches or
        codecarbon is not installed.
    """
    table = tdp_table()
    tokens = _tokens(cpu_name)
    best: tuple[str, ...] | None = None
    for start in range(len(tokens)):
        for end in range(start + 1, len(tokens) + 1):
            candidate = tokens[start:end]
            if candidate in table and (best is None or len(candidate) > len(best)):
                best = candidate
    return table[best] if best is not None else None


@dataclass(frozen=True)
class CpuInfo:
    """What /proc/cpuinfo says about the CPUs.

    Attributes:
        name: The brand string ("model name"), or None.
        sockets: Distinct "physical id" values (at least 1).
        threads_per_socket: Logical CPUs per package ("siblings"), or None when absent.
        virtual: Whether the kernel runs under a hypervisor (the ``hypervisor`` flag): then
            the sockets and siblings are the VM's, not the host's.
    """

    name: str | None
    sockets: int
    threads_per_socket: int | None = None
    virtual: bool = False


def read_cpuinfo(procfs_path: str | os.PathLike[str] = "/proc") -> CpuInfo:
    """Read the CPU's name, sockets, threads per socket and whether it is virtual."""
    names: list[str] = []
    sockets: set[str] = set()
    siblings: int | None = None
    virtual = False
    try:
        with open(Path(procfs_path, "cpuinfo"), encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    names.append(value.strip())
                elif key == "physical id":
                    sockets.add(value.strip())
                elif key == "siblings" and value.strip().isdigit():
                    siblings = int(value.strip())
                elif key == "flags" and "hypervisor" in value.split():
                    virtual = True
    except OSError:
        pass
    name = names[0] if names else platform.processor() or None
    return CpuInfo(name, max(len(sockets), 1), siblings, virtual)


_BUSY_EXCLUDED = ("idle", "iowait", "steal", "guest", "guest_nice")
"""CPU-time fields that are not work done on the CPU by this machine: ``steal`` is time the
hypervisor gave to other guests, and ``guest``/``guest_nice`` are already inside ``user``/
``nice`` (proc(5))."""


class CpuUtilisation:
    """Utilisation of the CPUs a process may use, in percent (0-100), since the previous call.

    What :class:`CpuModel` multiplies its per-CPU watts by, and what a process tree's CPU
    time is a share of under process scope (:meth:`busy_cpu_s`). Per instance, unlike
    ``psutil.cpu_percent(interval=None)``, whose baseline is shared by every caller in the
    process. Where a cgroup CPU quota applies, the cgroup's own CPU time over the quota;
    otherwise busy time over total time of the CPUs in the affinity set (``steal`` and
    ``iowait`` are not busy; ``guest`` is inside ``user``). The first call returns 0 (it
    takes the baseline).

    Args:
        allowance: The CPUs the process may use
            (:func:`~greenai.devices.cgroup.cpu_allowance`).
    """

    def __init__(self, allowance: CpuAllowance) -> None:
        self._allowance = allowance
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None

    def busy_cpu_s(self) -> float:
        """Busy CPU seconds so far of the CPUs in the allowance (cgroup or affinity)."""
        return self._sample()[0]

    def _sample(self) -> tuple[float, float]:
        """(busy CPU seconds, capacity CPU seconds) counters, both monotonic."""
        a = self._allowance
        if a.usage_file is not None and a.quota_cpus is not None:
            used_s = cgroup_cpu_usage_s(a.usage_file)
            if used_s is not None:
                return used_s, time.monotonic() * a.usable_cpus
        per_cpu = psutil.cpu_times(percpu=True)
        chosen = [per_cpu[i] for i in a.affinity if i < len(per_cpu)] or per_cpu
        busy = total = 0.0
        for times in chosen:
            fields = times._asdict()
            cpu_total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
            total += cpu_total
            busy += cpu_total - sum(fields.get(k, 0.0) for k in _BUSY_EXCLUDED[:3])
        return busy, total

    def __call__(self) -> float:
        """Percent busy since the previous call (0 on the first)."""
        with self._lock:
            now = self._sample()
            last, self._last = self._last, now
        if last is None:
            return 0.0
        capacity = now[1] - last[1]
        return 100.0 * (now[0] - last[0]) / capacity if capacity > 0 else 0.0


class CpuModel(Device):
    """CPU power = W per CPU * usable CPUs * (idle_fraction + (1 - idle_fraction) * utilisation).

    A model, not a measurement: real CPUs draw well below TDP at low load, can exceed it
    under turbo, and table TDPs are nominal, so the estimate can be off by tens of percent.
    ``relative_uncertainty`` is 0.5 to say so.

    The model covers the CPUs this process may use, not the whole machine: its affinity set,
    or its cgroup CPU quota where smaller (:func:`~greenai.devices.cgroup.cpu_allowance`).
    Watts per CPU are the socket's TDP over its logical CPUs: the TDP from codecarbon's
    table where the CPU is known, the logical CPUs per socket from /proc/cpuinfo. In a VM
    the host's socket size is unknown (cpuinfo describes the VM), so unless
    ``threads_per_socket`` is given, and for CPUs not in the table, each CPU counts
    codecarbon's default of 4 W per thread. Utilisation is that of the usable CPUs.
    """

    kind = "cpu"
    name = "cpu-model"
    method = "model"
    update_period_s = 0.1
    relative_uncertainty = 0.5

    def __init__(
        self,
        tdp_w: float | None = None,
        cpu_name: str | None = None,
        cpu_percent: Callable[[], float] | None = None,
        idle_fraction: float = 0.1,
        sockets: int | None = None,
        *,
        threads_per_socket: int | None = None,
        usable_cpus: float | None = None,
        procfs_path: str | os.PathLike[str] = "/proc",
        cgroup_root: str | os.PathLike[str] = DEFAULT_CGROUP_ROOT,
    ) -> None:
        """Set the model up; no I/O until :meth:`open`.

        Args:
            tdp_w: TDP of one CPU package (socket), in watts; looked up by name when None.
            cpu_name: CPU brand string; read from /proc/cpuinfo when None.
            cpu_percent: Utilisation of the usable CPUs in percent (0-100) since its
                previous call; measured from CPU times (or the cgroup's) when None.
            idle_fraction: Share of the power drawn at 0% utilisation, in [0, 1].
            sockets: Number of CPU packages; counted from /proc/cpuinfo when None.
            threads_per_socket: Logical CPUs per package; cpuinfo's "siblings" when None
                (on bare metal; in a VM it describes the VM, so it is not used for a
                table TDP there).
            usable_cpus: CPUs' worth of time this process may use; its affinity set or
                cgroup CPU quota when None.
            procfs_path: Where procfs is mounted.
            cgroup_root: Where the cgroup filesystem is mounted.

        Raises:
            ConfigError: A value is out of range.
        """
        if tdp_w is not None and not tdp_w > 0:
            raise ConfigError(f"tdp_w must be > 0 W, got {tdp_w}; pass None to look it up")
        if not 0 <= idle_fraction <= 1:
            raise ConfigError(f"idle_fraction must be in [0, 1], got {idle_fraction}")
        if sockets is not None and sockets < 1:
            raise ConfigError(f"sockets must be >= 1, got {sockets}; pass None to count them")
        if threads_per_socket is not None and threads_per_socket < 1:
            raise ConfigError(f"threads_per_socket must be >= 1, got {threads_per_socket}")
        if usable_cpus is not None and not usable_cpus > 0:
            raise ConfigError(f"usable_cpus must be > 0, got {usable_cpus}; None to detect")
        self.tdp_w = tdp_w
        self.cpu_name = cpu_name
        self.idle_fraction = idle_fraction
        self.sockets = sockets
        self.threads_per_socket = threads_per_socket
        self.usable_cpus = usable_cpus
        self.watts_per_cpu: float | None = None
        self.tdp_source = "given" if tdp_w is not None else ""
        self.usable_source = "given" if usable_cpus is not None else ""
        self._cpu_percent = cpu_percent
        self._busy: CpuUtilisation | None = None
        self._procfs_path = procfs_path
        self._cgroup_root = cgroup_root

    def _resolve(self) -> None:
        if self.watts_per_cpu is None:
            self._resolve_watts()
        allowance = cpu_allowance(cgroup_root=self._cgroup_root, procfs_path=self._procfs_path)
        self._busy = CpuUtilisation(allowance)
        if self.usable_cpus is None:
            self.usable_cpus, self.usable_source = allowance.usable_cpus, allowance.source
        if self._cpu_percent is None:
            self._cpu_percent = CpuUtilisation(allowance)

    def _resolve_watts(self) -> None:
        info = read_cpuinfo(self._procfs_path)
        self.cpu_name = self.cpu_name or info.name
        self.sockets = self.sockets or info.sockets
        threads = self.threads_per_socket
        threads_known = threads is not None
        if threads is None:
            threads = info.threads_per_socket or max(
                1, (psutil.cpu_count(logical=True) or 1) // self.sockets
            )
        found = lookup_tdp_w(self.cpu_name) if self.cpu_name and self.tdp_w is None else None
        if self.tdp_w is not None:
            self.watts_per_cpu = self.tdp_w / threads
        elif found is not None and (threads_known or not info.virtual):
            self.tdp_w, self.tdp_source = found[0], f"codecarbon table row {found[1]!r}"
            self.watts_per_cpu = self.tdp_w / threads
        else:
            self.watts_per_cpu = DEFAULT_W_PER_CPU
            self.tdp_w = DEFAULT_W_PER_CPU * threads
            if found is not None:
                self.tdp_source = (
                    f"VM: table TDP {found[0]:g} W ({found[1]!r}) is the host socket's, whose "
                    f"size is unknown here; {DEFAULT_W_PER_CPU:g} W per vCPU instead"
                )
            else:
                self.tdp_source = f"CPU not in table: {DEFAULT_W_PER_CPU:g} W per logical CPU"
        self.threads_per_socket = threads

    def share_inputs(self) -> ShareInputs:
        """A process tree's CPU time is a share of the busy time of the CPUs modelled."""
        return ShareInputs(busy_cpu_s=self.busy_cpu_s)

    def busy_cpu_s(self) -> float:
        """Busy CPU seconds so far of the CPUs the model covers (monotonic; after open).

        What a process's CPU time is a share of, for :mod:`greenai.devices.attribution`.
        """
        if self._busy is None:
            self._resolve()
        assert self._busy is not None
        return self._busy.busy_cpu_s()

    @property
    def full_load_w(self) -> float | None:
        """Modelled power at 100% utilisation of the usable CPUs, in watts (after open)."""
        if self.watts_per_cpu is None or self.usable_cpus is None:
            return None
        return self.watts_per_cpu * self.usable_cpus

    def open(self) -> None:
        """Resolve CPU, TDP and usable CPUs, and prime the utilisation counter."""
        self._resolve()
        assert self._cpu_percent is not None
        self._cpu_percent()  # the first call only sets the baseline

    def read(self) -> Reading:
        """Return the modelled power in watts. Raises DeviceReadError if utilisation fails."""
        if self.full_load_w is None or self._cpu_percent is None:
            self._resolve()
        full_w, cpu_percent = self.full_load_w, self._cpu_percent
        assert full_w is not None and cpu_percent is not None
        try:
            utilisation = min(max(float(cpu_percent()) / 100.0, 0.0), 1.0)
        except Exception as e:  # psutil or an injected callable: convert at the boundary
            raise DeviceReadError(f"{self.name}: cannot read CPU utilisation: {e}") from e
        share = self.idle_fraction + (1.0 - self.idle_fraction) * utilisation
        return Reading(power_w=full_w * share)

    def detail(self) -> str:
        """Say which CPU, which TDP, how many CPUs and where each came from."""
        if self.full_load_w is None:
            return "model estimate from utilisation * TDP (TDP not resolved until open())"
        return (
            f"model estimate, not measured: {self.cpu_name or 'unknown CPU'}, "
            f"{self.watts_per_cpu:.3g} W per CPU (TDP {self.tdp_w:g} W / "
            f"{self.threads_per_socket} CPUs per socket; {self.tdp_source}) * "
            f"{self.usable_cpus:g} usable CPU(s) ({self.usable_source}), "
            f"power = {self.full_load_w:.3g} W * ({self.idle_fraction:g} + "
            f"{1 - self.idle_fraction:g} * utilisation)"
        )
