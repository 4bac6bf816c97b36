"""NVML entry points loaded with ctypes, for the Python twin of the native sampling loop.

The C loop (``kernels/native.c``) loads the same functions with ``dlopen``/``dlsym``; this
module mirrors that, so both read NVML through the same library file and calls.
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import Any

from greenai.errors import DeviceUnavailableError, DriverMismatchError

FI_DEV_POWER_INSTANT = 186
"""NVML_FI_DEV_POWER_INSTANT: instant power in mW (nvml.h)."""


class FieldValue(ctypes.Structure):
    """nvmlFieldValue_t (nvml.h), with its value union flattened to 8 bytes."""

    _fields_ = [
        ("fieldId", ctypes.c_uint),
        ("scopeId", ctypes.c_uint),
        ("timestamp", ctypes.c_longlong),
        ("latencyUsec", ctypes.c_longlong),
        ("valueType", ctypes.c_int),
        ("nvmlReturn", ctypes.c_int),
        ("value", ctypes.c_ubyte * 8),
    ]


# nvmlValueType_t -> struct format of the union member NVML fills in.
_VALUE_FORMATS = {0: "=d", 1: "=I", 2: "=Q", 3: "=Q", 4: "=q", 5: "=i", 6: "=H"}


def field_as_float(f: FieldValue) -> float:
    """The field's value as a float, whatever member of the union NVML filled in."""
    value: float = struct.unpack_from(_VALUE_FORMATS.get(f.valueType, "=I"), bytes(f.value))[0]
    return float(value)


class NvmlApi:
    """The NVML entry points the loop uses, loaded with ctypes from one library path."""

    def __init__(self, lib: str) -> None:
        try:
            dl = ctypes.CDLL(lib, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as e:
            raise DeviceUnavailableError(
                f"cannot load NVML from {lib} ({e}): NVIDIA driver/NVML not found"
            ) from e
        self.lib = lib

        def sym(name: str, fallback: str | None = None) -> Any:
            for n in (name, fallback):
                if n is not None and hasattr(dl, n):
                    return getattr(dl, n)
            return None

        self.init = sym("nvmlInit_v2", "nvmlInit")
        self.shutdown = sym("nvmlShutdown")
        self.by_index = sym("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex")
        self.by_uuid = sym("nvmlDeviceGetHandleByUUID")
        self.energy = sym("nvmlDeviceGetTotalEnergyConsumption")
        self.power = sym("nvmlDeviceGetPowerUsage")
        self.fields = sym("nvmlDeviceGetFieldValues")
        self.error_string = sym("nvmlErrorString")
        if None in (self.init, self.shutdown, self.by_index, self.by_uuid):
            raise DriverMismatchError(
                f"{lib} lacks the NVML entry points greenai needs (nvmlInit_v2, "
                "nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetHandleByUUID); update the "
                "NVIDIA driver"
            )
        if self.error_string is not None:
            self.error_string.restype = ctypes.c_char_p

    def error(self, code: int) -> str:
        """NVML's text for an error code."""
        text = self.error_string(code) if self.error_string is not None else None
        return text.decode() if text else "unknown error"
