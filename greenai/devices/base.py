"""The Device interface every power/energy source implements.

A device is read by the sampler thread, never on the user's hot path. ``read()`` returns a
:class:`Reading`: a cumulative energy counter value (joules, monotonic, already unwrapped)
when the source has one, an instantaneous power value (watts) when it has one, or both.
How the timeline turns readings into energy depends on :attr:`Device.method`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Literal

Method = Literal["counter", "power", "model"]
"""How an energy figure was obtained.

``counter``: deltas of a hardware energy counter. ``power``: integrated power samples.
``model``: estimated from utilisation and a TDP table, never measured.
"""

Kind = Literal["gpu", "cpu", "dram", "other"]


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


class Device(abc.ABC):
    """A source of power or energy readings.

    Constructors do no I/O: :meth:`open` acquires what the device needs, :meth:`read` reads,
    :meth:`close` releases. Subclasses set the class or instance attributes below.

    Attributes:
        name: Unique, stable name such as ``"gpu0"`` or ``"cpu0-package"``.
        kind: What hardware the figure covers.
        method: How energy is obtained from this device.
        update_period_s: How often the underlying source refreshes its value, in seconds.
            The sampler's default period follows the smallest of these.
        counter_resolution_j: Quantisation step of the energy counter, in joules.
        relative_uncertainty: Relative uncertainty (about 95% coverage) of energy integrated
            from this device's power values, used when no counter bounds them.
    """

    name: str = "device"
    kind: Kind = "other"
    method: Method = "power"
    update_period_s: float = 0.1
    counter_resolution_j: float = 0.0
    relative_uncertainty: float = 0.05

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources. Raises DeviceError when the device cannot be used."""

    @abc.abstractmethod
    def read(self) -> Reading:
        """Read the device now. Raises DeviceReadError when this read fails."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Never raises."""

    def describe(self) -> dict[str, Any]:
        """Return what this device is and how it is measured, for `greenai devices`."""
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "update_period_s": self.update_period_s,
            "detail": self.detail(),
        }

    def detail(self) -> str:
        """One line on the source (model name, sysfs path, TDP used, ...)."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} method={self.method}>"
