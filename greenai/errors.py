"""Errors and warnings greenai raises. Only these reach users; vendor errors are converted."""

from __future__ import annotations


class GreenAIError(Exception):
    """Base class of every error greenai raises on purpose."""


class ConfigError(GreenAIError, ValueError):
    """An option is unknown or has a value greenai cannot use."""


class TrackerStateError(GreenAIError, RuntimeError):
    """A tracker was used out of order (stop without start, start twice, ...)."""


class DeviceError(GreenAIError):
    """A power or energy source could not be opened or read."""


class DeviceUnavailableError(DeviceError):
    """The source does not exist here (no driver, no library, no sysfs tree)."""


class DriverMismatchError(DeviceUnavailableError):
    """The NVML library and the kernel driver disagree on their version."""


class MIGNotSupportedError(DeviceError):
    """A MIG instance was selected; NVML reports power only for the whole GPU."""


class DeviceReadError(DeviceError):
    """A single read failed (the device may recover on the next read)."""


class GreenAIWarning(UserWarning):
    """Base class of greenai's warnings."""


class DeviceFailureWarning(GreenAIWarning):
    """A device failed during a run; its gap is recorded and the result marked partial."""


class PermissionWarning(GreenAIWarning):
    """A source exists but cannot be read by this user (for example RAPL since CVE-2020-8694)."""


class MeasurementWarning(GreenAIWarning):
    """A result is less complete than asked for (open phase, no devices, short window)."""
