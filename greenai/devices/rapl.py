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
import warnings
from pathlib import Path

from greenai.devices.base import Device, Kind, Reading
from greenai.errors import DeviceError, DeviceReadError, DeviceUnavailableError, PermissionWarning

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


class RaplDomain(Device):
    """One RAPL zone (a CPU package or its DRAM) read as an energy counter.

    ``read()`` returns the joules consumed since :meth:`open`, monotonic, with counter
    wraparound undone.
    """

    method = "counter"
    update_period_s = 0.001  # the hardware refreshes RAPL status registers about every 1 ms
    counter_resolution_j = 1e-6  # energy_uj is in µJ; the hardware unit (~15-61 µJ) is finer
    # than any window we report, so it is not tracked separately.

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
        self._total_uj = 0

    def open(self) -> None:
        """Read the counter range and the starting value.

        Raises:
            DeviceUnavailableError: The zone's files do not exist.
            DeviceError: They cannot be read (permission, bad contents).
        """
        try:
            max_range_uj = _read_int(self.zone_dir / "max_energy_range_uj")
            first_uj = _read_int(self.zone_dir / "energy_uj")
        except FileNotFoundError as e:
            raise DeviceUnavailableError(f"{self.name}: RAPL zone {self.zone_dir} vanished") from e
        except (OSError, ValueError) as e:
            raise DeviceError(f"{self.name}: cannot read {self.zone_dir}: {e}") from e
        # The counter takes values 0..max_energy_range_uj and then restarts at 0, so one
        # wrap spans range + 1 (the kernel derives the range from the 32-bit register's
        # maximum, ENERGY_STATUS_MASK, in drivers/powercap/intel_rapl_common.c). The true
        # step is one hardware unit, not 1 µJ; the difference is < 61 µJ per wrap of ~262 kJ.
        self._wrap_uj = max_range_uj + 1
        self._last_uj = first_uj
        self._total_uj = 0

    def read(self) -> Reading:
        """Return cumulative energy since :meth:`open`, in joules.

        A decrease of the raw counter is taken as one wrap. Two wraps between reads cannot
        be seen, but the range is tens to hundreds of kJ, minutes even at full load: far
        longer than any sampling period.

        Raises:
            DeviceReadError: The counter could not be read, or :meth:`open` was not called.
        """
        if self._last_uj is None:
            raise DeviceReadError(f"{self.name}: read() before open()")
        try:
            raw_uj = _read_int(self.zone_dir / "energy_uj")
        except (OSError, ValueError) as e:
            raise DeviceReadError(f"{self.name}: cannot read {self.zone_dir}/energy_uj: {e}") from e
        delta_uj = raw_uj - self._last_uj
        if delta_uj < 0:
            delta_uj += self._wrap_uj
        self._total_uj += delta_uj
        self._last_uj = raw_uj
        return Reading(energy_j=self._total_uj * 1e-6)

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
    once with :class:`~greenai.errors.PermissionWarning` and leaves them out.

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
        domains.append(domain)
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
