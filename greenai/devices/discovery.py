"""Find the energy sources this machine has. Never crashes: nothing found is an empty list."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from types import ModuleType

from greenai.devices.base import Device
from greenai.errors import DeviceUnavailableError

log = logging.getLogger("greenai")


def discover(
    *,
    gpus: bool = True,
    rapl: bool = True,
    models: bool = True,
    powercap_root: str | os.PathLike[str] | None = None,
    nvml: ModuleType | None = None,
    amdsmi: ModuleType | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Device]:
    """Return the devices to measure here, strongest method first.

    GPUs come from NVML (NVIDIA) and AMD SMI (AMD). CPU package and DRAM come from RAPL
    counters where readable; where RAPL is absent or unreadable, the CPU and memory models
    stand in (method ``model``), unless ``models=False``.

    Raises:
        MIGNotSupportedError: ``CUDA_VISIBLE_DEVICES`` selects a MIG instance.
    """
    from greenai.devices.amd import discover_amd_gpus
    from greenai.devices.cpu_model import CpuModel
    from greenai.devices.memory_model import MemoryModel
    from greenai.devices.nvidia import discover_gpus
    from greenai.devices.rapl import DEFAULT_POWERCAP_ROOT, discover_rapl

    found: list[Device] = []
    if gpus:
        found.extend(discover_gpus(nvml=nvml, environ=environ))
        found.extend(discover_amd_gpus(amdsmi=amdsmi, environ=environ))
    kinds: set[str] = set()
    if rapl:
        domains = discover_rapl(powercap_root or DEFAULT_POWERCAP_ROOT)
        found.extend(domains)
        kinds = {d.kind for d in domains}
    if models:
        if "cpu" not in kinds:
            try:
                found.append(CpuModel())
            except DeviceUnavailableError as exc:  # pragma: no cover - psutil is a dependency
                log.info("CPU model unavailable: %s", exc)
        if "dram" not in kinds:
            found.append(MemoryModel())
    return found
