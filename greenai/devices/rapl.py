"""CPU package and DRAM energy from Linux RAPL counters, read through powercap sysfs.

The kernel exposes RAPL zones as ``/sys/class/powercap/intel-rapl:N`` (one package per
socket) and ``intel-rapl:N:M`` (its sub-zones), each with a cumulative ``energy_uj`` counter
in microjoules. AMD Zen CPUs appear under the same ``intel-rapl`` names (the kernel's
``intel_rapl_msr`` driver serves both vendors). Every function takes the powercap root as
a parameter, so tests build a fake tree.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from pathlib import Path

from greenai.devices.base import Device, Kind, LoopSource, Reading
from greenai.errors import (
    DeviceError,
    DeviceReadError,
    DeviceUnavailableError,
    MeasurementWarning,
    PermissionWarning,
)

__all__ = ["DEFAULT_POWERCAP_ROOT", "RaplDomain", "discover_rapl"]

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"

# Only `intel-rapl:N` and `intel-rapl:N:M`. `intel-rapl-mmio:N` is a second interface to the
# same package counter (MMIO instead of MSR): reading both would count the package twice.
_ZONE_DIR = re.compile(r"intel-rapl:(\d+)(?::(\d+))?")
# Kernel zone names: "package-0", or "package-0-die-1" on multi-die parts.
_PACKAGE_NAME = re.compile(r"package-(\d+)(?:-die-(\d+))?")


def _read_text(path: Path) -> str:
    """Read one sysfs file. The single seam through which this module touches the tree."""
    with open(path) as f:
        return f.read()


def _read_int(path: Path) -> int:
    return int(_read_text(path).strip())


def _read_zone_int(name: str, path: Path) -> int:
    """Read one integer file of a zone; errors name the file."""
    try:
        return _read_int(path)
    except FileNotFoundError as e:
        raise DeviceUnavailableError(f"{name}: RAPL zone has no {path}") from e
    except (OSError, ValueError) as e:
        raise DeviceError(f"{name}: cannot read {path}: {e}") from e


class RaplDomain(Device):
    """One RAPL zone (a CPU package or its DRAM) read as an energy counter.

    ``read()`` returns the raw counter in joules with wraparound undone since the first
    :meth:`open`: an absolute value, like NVML's counter, so two trackers sharing the zone
    each keep their own origin and neither resets the other's.
    """

    method = "counter"
    counter_integrates = True  # an accumulating energy status register, updated every ~1 ms
    update_period_s = 0.001  # the hardware refreshes RAPL status registers about every 1 ms
    counter_resolution_j = 1e-6  # energy_uj is in µJ; the hardware unit (~15-61 µJ) is finer
    # than any window we report, so it is not tracked separately.

    def loop_source(self) -> LoopSource | None:
        """The zone's ``energy_uj`` file for the native loop; None if its range is unreadable."""
        try:
            max_range = int((Path(self.zone_dir) / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            return None
        return LoopSource("rapl", str(Path(self.zone_dir) / "energy_uj"), max_range)

    def __init__(self, zone_dir: str | os.PathLike[str], name: str, kind: Kind) -> None:
        """Describe a zone; no I/O until :meth:`open`.

        Args:
            zone_dir: The zone's sysfs directory, e.g. ``/sys/class/powercap/intel-rapl:0``.
            name: Device name such as ``"cpu0-package"`` or ``"cpu0-dram"``.
            kind: ``"cpu"`` for a package zone, ``"dram"`` for a DRAM zone.
        """
        self.zone_dir = Path(zone_dir)
        self.name = name
        self.kind = kind
        self._wrap_uj = 0
        self._last_uj: int | None = None
        self._wrapped_uj = 0  # whole wraps seen since the first open, in µJ
        self._lock = threading.Lock()  # two trackers' samplers may read one zone

    def open(self) -> None:
        """Read the counter range and the starting value.

        Raises:
            DeviceUnavailableError: One of the zone's files does not exist (named).
            DeviceError: It cannot be read (permission, bad contents).
        """
        max_range_uj = _read_zone_int(self.name, self.zone_dir / "max_energy_range_uj")
        first_uj = _read_zone_int(self.name, self.zone_dir / "energy_uj")
        # The counter takes values 0..max_energy_range_uj and then restarts at 0, so one
        # wrap spans range + 1 (the kernel derives the range from the 32-bit register's
        # maximum, ENERGY_STATUS_MASK, in drivers/powercap/intel_rapl_common.c). The true
        # step is one hardware unit, not 1 µJ; the difference is < 61 µJ per wrap of ~262 kJ.
        with self._lock:
            self._wrap_uj = max_range_uj + 1
            if self._last_uj is not None and first_uj < self._last_uj:
                self._wrapped_uj += self._wrap_uj  # reopened after a close: keep monotonic
            self._last_uj = first_uj

    def read(self) -> Reading:
        """Return the counter in joules, wraparound undone (an absolute, monotonic value).

        A decrease of the raw counter is taken as one wrap. Two wraps between reads cannot
        be seen, but the range is tens to hundreds of kJ, minutes even at full load: far
        longer than any sampling period.

        Raises:
            DeviceReadError: The counter could not be read, or :meth:`open` was not called.
        """
        # The file read is inside the lock: two samplers' reads must reach the wrap check in
        # the order they read the counter, or an older value would look like a wrap.
        with self._lock:
            if self._last_uj is None:
                raise DeviceReadError(f"{self.name}: read() before open()")
            try:
                raw_uj = _read_int(self.zone_dir / "energy_uj")
            except (OSError, ValueError) as e:
                path = self.zone_dir / "energy_uj"
                raise DeviceReadError(f"{self.name}: cannot read {path}: {e}") from e
            if raw_uj < self._last_uj:
                self._wrapped_uj += self._wrap_uj
            self._last_uj = raw_uj
            return Reading(energy_j=(self._wrapped_uj + raw_uj) * 1e-6)

    def detail(self) -> str:
        """Say which sysfs zone this is."""
        return f"RAPL energy counter {self.zone_dir}"


def _zone_key(path: Path) -> tuple[int, int]:
    match = _ZONE_DIR.fullmatch(path.name)
    assert match is not None
    return int(match[1]), int(match[2]) if match[2] is not None else -1


def _domain_for(zone: Path, package: Path) -> RaplDomain | None:
    """Return the RaplDomain for a package or DRAM zone, None for any other zone."""
    # "core" and "uncore" are parts of the package and "psys" covers the whole platform
    # (package included): adding any of them to the package would count energy twice.
    try:
        zone_name = _read_text(zone / "name").strip()
        package_name = _read_text(package / "name").strip()
    except OSError:
        return None
    match = _PACKAGE_NAME.fullmatch(package_name)
    if match is None:  # e.g. a top-level psys zone and its children
        return None
    socket = f"cpu{match[1]}" + (f"-die{match[2]}" if match[2] is not None else "")
    if zone == package:
        return RaplDomain(zone, f"{socket}-package", "cpu")
    if zone_name == "dram":
        return RaplDomain(zone, f"{socket}-dram", "dram")
    return None


def discover_rapl(root: str | os.PathLike[str] = DEFAULT_POWERCAP_ROOT) -> list[RaplDomain]:
    """Find the readable RAPL package and DRAM zones under a powercap root.

    Returns an empty list when there is no powercap tree (no RAPL, a VM, not Linux). When
    zones exist but their counters are root-only (the default since CVE-2020-8694), warns
    once with :class:`~greenai.errors.PermissionWarning` and leaves them out. A zone whose
    ``max_energy_range_uj`` cannot be read is left out with a
    :class:`~greenai.errors.MeasurementWarning` naming the file.

    Args:
        root: The powercap class directory, normally ``/sys/class/powercap``.
    """
    root = Path(root)
    try:
        entries = [p for p in root.iterdir() if _ZONE_DIR.fullmatch(p.name)]
    except OSError:
        return []
    domains: list[RaplDomain] = []
    denied: list[str] = []
    no_range: list[str] = []
    for zone in sorted(entries, key=_zone_key):
        domain = _domain_for(zone, root / f"intel-rapl:{_zone_key(zone)[0]}")
        if domain is None:
            continue
        try:
            _read_int(zone / "energy_uj")
        except PermissionError:
            denied.append(zone.name)
            continue
        except (OSError, ValueError):
            continue
        try:
            _read_int(zone / "max_energy_range_uj")
        except (OSError, ValueError) as e:
            # Without the range a wrap cannot be undone (one wrap would read as minus tens
            # of kJ), so the zone is left to the model rather than read wrongly.
            no_range.append(f"{zone / 'max_energy_range_uj'} ({getattr(e, 'strerror', None) or e})")
            continue
        domains.append(domain)
    if no_range:
        warnings.warn(
            f"RAPL zone(s) without a readable counter range, left out: {'; '.join(no_range)}. "
            "Their energy counter cannot be unwrapped, so greenai uses the CPU/memory model "
            "(an estimate) where no other RAPL zone covers that kind",
            MeasurementWarning,
            stacklevel=2,
        )
    if denied:
        warnings.warn(
            f"RAPL energy counters in {root} ({', '.join(denied)}) are readable only by root "
            "since CVE-2020-8694; greenai falls back to the CPU/memory model (an estimate) "
            "for them. To grant read access until reboot: sudo chmod a+r "
            f"{root}/intel-rapl:*/energy_uj {root}/intel-rapl:*:*/energy_uj (the zone "
            "directories are symlinks, which chmod -R would not follow); to keep it, add a "
            "udev rule or tmpfiles.d entry doing the same, or grant one user: "
            f"sudo setfacl -m u:$USER:r {root}/intel-rapl:*/energy_uj",
            PermissionWarning,
            stacklevel=2,
        )
    return domains
