"""Memory power estimated from the memory in use: a model, never a measurement."""

from __future__ import annotations

import os
from collections.abc import Callable

import psutil

from greenai.devices.base import Device, Reading, ShareInputs
from greenai.devices.cgroup import (
    DEFAULT_CGROUP_ROOT,
    MemoryAllowance,
    cgroup_memory_used_bytes,
    memory_allowance,
)
from greenai.errors import ConfigError, DeviceReadError

__all__ = ["DEFAULT_WATTS_PER_GB", "MemoryModel"]

DEFAULT_WATTS_PER_GB = 3.0 / 8.0
"""0.375 W per GB (GiB): codecarbon's "3 watts of power for every 8GB of DDR3 or DDR4 memory"
(codecarbon/external/ram.py)."""

_BYTES_PER_GB = 1024**3  # codecarbon counts GB as GiB


def _used_bytes() -> int:
    return int(psutil.virtual_memory().used)


class MemoryModel(Device):
    """DRAM power = watts_per_gb * memory in use (GiB).

    A model, not a measurement: real DRAM power depends on module count, type (DDR4/DDR5,
    HBM), refresh and access rate far more than on bytes allocated, so the estimate can be
    off by tens of percent or more. ``relative_uncertainty`` is 0.5 to say so.

    Like the CPU model it covers what this process may use: under a cgroup memory limit (a
    container, a SLURM job) the memory in use is the cgroup's, less its inactive page
    cache, not the host's.
    """

    kind = "dram"
    name = "memory-model"
    method = "model"
    update_period_s = 0.1
    relative_uncertainty = 0.5

    def __init__(
        self,
        watts_per_gb: float = DEFAULT_WATTS_PER_GB,
        used_bytes: Callable[[], float] | None = None,
        *,
        cgroup_root: str | os.PathLike[str] = DEFAULT_CGROUP_ROOT,
        procfs_path: str | os.PathLike[str] = "/proc",
    ) -> None:
        """Set the model up; no I/O.

        Args:
            watts_per_gb: Power per GiB in use, in watts.
            used_bytes: Returns memory in use, in bytes; when None, the cgroup's use under
                a cgroup memory limit, else ``psutil.virtual_memory().used``.
            cgroup_root: Where the cgroup filesystem is mounted.
            procfs_path: Where procfs is mounted.

        Raises:
            ConfigError: watts_per_gb is not positive.
        """
        if not watts_per_gb > 0:
            raise ConfigError(f"watts_per_gb must be > 0, got {watts_per_gb}; default 0.375")
        self.watts_per_gb = watts_per_gb
        self.source = "given" if used_bytes is not None else ""
        self._used_bytes = used_bytes
        self._cgroup_root = cgroup_root
        self._procfs_path = procfs_path

    def _resolve(self) -> Callable[[], float]:
        if self._used_bytes is None:
            allowance = memory_allowance(
                cgroup_root=self._cgroup_root, procfs_path=self._procfs_path
            )
            if allowance.limit_bytes is not None and cgroup_memory_used_bytes(allowance):
                self._used_bytes = _CgroupUsed(allowance)
                self.source = (
                    f"cgroup v{allowance.version} memory in use under its "
                    f"{allowance.limit_bytes / _BYTES_PER_GB:.3g} GiB limit"
                )
            else:
                self._used_bytes, self.source = _used_bytes, "machine memory in use"
        return self._used_bytes

    def share_inputs(self) -> ShareInputs:
        """A process tree is charged its resident memory over the memory in use modelled."""
        return ShareInputs(used_bytes=self.used_bytes)

    def used_bytes(self) -> float:
        """Memory in use that the model charges, in bytes (the cgroup's under a limit)."""
        return float(self._resolve()())

    def open(self) -> None:
        """Choose where memory in use is read: the cgroup's under a limit, else the machine's."""
        self._resolve()

    def read(self) -> Reading:
        """Return the modelled power in watts. Raises DeviceReadError if memory use fails."""
        try:
            used_gb = float(self._resolve()()) / _BYTES_PER_GB
        except Exception as e:  # psutil or an injected callable: convert at the boundary
            raise DeviceReadError(f"{self.name}: cannot read memory in use: {e}") from e
        return Reading(power_w=self.watts_per_gb * used_gb)

    def detail(self) -> str:
        """Say how power is estimated."""
        where = f" ({self.source})" if self.source else ""
        return (
            f"model estimate, not measured: {self.watts_per_gb:g} W per GiB of memory in use{where}"
        )


class _CgroupUsed:
    """Memory a cgroup uses (bytes); raises OSError when its files stop being readable."""

    def __init__(self, allowance: MemoryAllowance) -> None:
        self._allowance = allowance

    def __call__(self) -> float:
        used = cgroup_memory_used_bytes(self._allowance)
        if used is None:
            raise OSError(f"cannot read memory use under {self._allowance.usage_dir}")
        return used
