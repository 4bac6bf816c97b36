"""Memory power estimated from the memory in use: a model, never a measurement."""

from __future__ import annotations

from collections.abc import Callable

import psutil

from greenai.devices.base import Device, Reading
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
    ) -> None:
        """Set the model up; no I/O.

        Args:
            watts_per_gb: Power per GiB in use, in watts.
            used_bytes: Returns memory in use, in bytes; ``psutil.virtual_memory().used``
                when None.

        Raises:
            ConfigError: watts_per_gb is not positive.
        """
        if not watts_per_gb > 0:
            raise ConfigError(f"watts_per_gb must be > 0, got {watts_per_gb}; default 0.375")
        self.watts_per_gb = watts_per_gb
        self._used_bytes = used_bytes or _used_bytes

    def read(self) -> Reading:
        """Return the modelled power in watts. Raises DeviceReadError if memory use fails."""
        try:
            used_gb = float(self._used_bytes()) / _BYTES_PER_GB
        except Exception as e:  # psutil or an injected callable: convert at the boundary
            raise DeviceReadError(f"{self.name}: cannot read memory in use: {e}") from e
        return Reading(power_w=self.watts_per_gb * used_gb)

    def detail(self) -> str:
        """Say how power is estimated."""
        return f"model estimate, not measured: {self.watts_per_gb:g} W per GiB of memory in use"
