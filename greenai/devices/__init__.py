"""Energy and power sources: NVIDIA GPUs (NVML), RAPL counters, and CPU/memory models.

``discover`` and ``apply_scope`` are imported on first use (PEP 562): a tracker that is only
made, or given its devices, never loads NVML, psutil or the vendor modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from greenai.devices.base import Capabilities, Device, Method, Reading, Scope, ShareInputs

if TYPE_CHECKING:
    from greenai.devices.attribution import apply_scope
    from greenai.devices.discovery import discover

__all__ = [
    "Capabilities",
    "Device",
    "Method",
    "Reading",
    "Scope",
    "ShareInputs",
    "apply_scope",
    "discover",
]

_LAZY = {"apply_scope": "greenai.devices.attribution", "discover": "greenai.devices.discovery"}


def __getattr__(name: str) -> Any:
    """Import ``discover`` and ``apply_scope`` on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greenai.devices' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
