"""Energy and power sources: NVIDIA GPUs (NVML), RAPL counters, and CPU/memory models."""

from greenai.devices.attribution import apply_scope
from greenai.devices.base import Device, Method, Reading, Scope
from greenai.devices.discovery import discover

__all__ = ["Device", "Method", "Reading", "Scope", "apply_scope", "discover"]
