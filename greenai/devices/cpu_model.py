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
from collections.abc import Callable
from pathlib import Path

import psutil

from greenai.devices.base import Device, Reading
from greenai.errors import ConfigError, DeviceReadError

__all__ = ["DEFAULT_TDP_W", "CpuModel", "lookup_tdp_w"]

DEFAULT_TDP_W = 85.0
"""TDP per socket, in watts, assumed for a CPU not in the table (codecarbon's POWER_CONSTANT)."""

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


def _cpu_power_csv() -> Path | None:
    spec = importlib.util.find_spec("codecarbon")  # locates without importing
    for location in (spec and spec.submodule_search_locations) or []:
        path = Path(location, "data", "hardware", "cpu_power.csv")
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=1)
def _tdp_table() -> dict[tuple[str, ...], tuple[float, str]]:
    """Map normalised table names to (TDP in W, table name); empty without codecarbon."""
    path = _cpu_power_csv()
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
    table = _tdp_table()
    tokens = _tokens(cpu_name)
    best: tuple[str, ...] | None = None
    for start in range(len(tokens)):
        for end in range(start + 1, len(tokens) + 1):
            candidate = tokens[start:end]
            if candidate in table and (best is None or len(candidate) > len(best)):
                best = candidate
    return table[best] if best is not None else None


def detect_cpu(procfs_path: str | os.PathLike[str] = "/proc") -> tuple[str | None, int]:
    """Return (brand string or None, number of sockets) from cpuinfo, else platform."""
    names: list[str] = []
    sockets: set[str] = set()
    try:
        with open(Path(procfs_path, "cpuinfo"), encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    names.append(value.strip())
                elif key.strip() == "physical id":
                    sockets.add(value.strip())
    except OSError:
        pass
    return (names[0] if names else platform.processor() or None), max(len(sockets), 1)


class CpuModel(Device):
    """CPU power = TDP * sockets * (idle_fraction + (1 - idle_fraction) * utilisation).

    A model, not a measurement: real CPUs draw well below TDP at low load, can exceed it
    under turbo, and table TDPs are nominal, so the estimate can be off by tens of percent.
    ``relative_uncertainty`` is 0.5 to say so.
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
        procfs_path: str | os.PathLike[str] = "/proc",
    ) -> None:
        """Set the model up; no I/O until :meth:`open`.

        Args:
            tdp_w: TDP of one CPU package (socket), in watts; looked up by name when None.
            cpu_name: CPU brand string; read from /proc/cpuinfo when None.
            cpu_percent: System-wide utilisation in percent (0-100) since its previous call;
                ``psutil.cpu_percent(interval=None)`` when None.
            idle_fraction: Share of TDP drawn at 0% utilisation, in [0, 1].
            sockets: Number of CPU packages; counted from /proc/cpuinfo when None.
            procfs_path: Where procfs is mounted.

        Raises:
            ConfigError: A value is out of range.
        """
        if tdp_w is not None and not tdp_w > 0:
            raise ConfigError(f"tdp_w must be > 0 W, got {tdp_w}; pass None to look it up")
        if not 0 <= idle_fraction <= 1:
            raise ConfigError(f"idle_fraction must be in [0, 1], got {idle_fraction}")
        if sockets is not None and sockets < 1:
            raise ConfigError(f"sockets must be >= 1, got {sockets}; pass None to count them")
        self.tdp_w = tdp_w
        self.cpu_name = cpu_name
        self.idle_fraction = idle_fraction
        self.sockets = sockets
        self.tdp_source = "given" if tdp_w is not None else ""
        self._cpu_percent = cpu_percent or functools.partial(psutil.cpu_percent, interval=None)
        self._procfs_path = procfs_path

    def _resolve(self) -> None:
        if self.cpu_name is None or self.sockets is None:
            detected_name, detected_sockets = detect_cpu(self._procfs_path)
            self.cpu_name = self.cpu_name or detected_name
            self.sockets = self.sockets or detected_sockets
        if self.tdp_w is None:
            found = lookup_tdp_w(self.cpu_name) if self.cpu_name else None
            if found is None:
                self.tdp_w, self.tdp_source = DEFAULT_TDP_W, "default TDP, CPU not in table"
            else:
                self.tdp_w, self.tdp_source = found[0], f"codecarbon table row {found[1]!r}"

    def open(self) -> None:
        """Resolve CPU name, sockets and TDP, and prime the utilisation counter."""
        self._resolve()
        self._cpu_percent()  # the first call only sets the baseline

    def read(self) -> Reading:
        """Return the modelled power in watts. Raises DeviceReadError if utilisation fails."""
        if self.tdp_w is None or self.sockets is None:
            self._resolve()
        assert self.tdp_w is not None and self.sockets is not None
        try:
            utilisation = min(max(float(self._cpu_percent()) / 100.0, 0.0), 1.0)
        except Exception as e:  # psutil or an injected callable: convert at the boundary
            raise DeviceReadError(f"{self.name}: cannot read CPU utilisation: {e}") from e
        share = self.idle_fraction + (1.0 - self.idle_fraction) * utilisation
        return Reading(power_w=self.tdp_w * self.sockets * share)

    def detail(self) -> str:
        """Say which CPU, which TDP and where it came from."""
        if self.tdp_w is None:
            return "model estimate from utilisation * TDP (TDP not resolved until open())"
        return (
            f"model estimate, not measured: {self.cpu_name or 'unknown CPU'}, "
            f"TDP {self.tdp_w:g} W * {self.sockets} socket(s) ({self.tdp_source}), "
            f"power = TDP * ({self.idle_fraction:g} + {1 - self.idle_fraction:g} * utilisation)"
        )
