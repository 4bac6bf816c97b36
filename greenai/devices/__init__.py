"""Energy and power sources: NVIDIA GPUs (NVML), RAPL counters, and CPU/memory models."""

from greenai.devices.base import Device, Method, Reading
from greenai.devices.discovery import discover

__all__ = ["Device", "Method", "Reading", "discover"]
