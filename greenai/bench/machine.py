"""Who ran a benchmark: GPU model, driver and UUID, CPU model, torch version, a fingerprint.

Results from different machines are only comparable when each says where it came from;
:func:`machine_info` is stored with every benchmark run and printed by ``greenai compare``.
Nothing here raises: a missing NVML or an unreadable ``/proc/cpuinfo`` leaves a field empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "FINGERPRINT_KEYS",
    "cpu_model",
    "describe",
    "fingerprint",
    "gpu_info",
    "machine_info",
]

FINGERPRINT_KEYS = (
    "hostname",
    "cpu_model",
    "cpu_count",
    "gpus",
    "driver",
    "cuda",
    "torch",
)
"""The fields the fingerprint hashes: same hardware, driver and torch ⇒ same fingerprint."""


def cpu_model(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :mod:`platform`), or ``""``."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info(nvml: ModuleType | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """The visible NVIDIA GPUs (index, model, UUID, memory) and the driver version.

    Args:
        nvml: The ``pynvml`` module (tests pass a fake); None imports it.

    Returns:
        ``(gpus, driver)``; ``([], None)`` where there is no NVML or no driver.
    """
    try:
        if nvml is None:
            import pynvml

            nvml = pynvml
        nvml.nvmlInit()
    except Exception:  # no library, no driver: a CPU machine
        return [], None
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                {
                    "index": index,
                    "model": _text(nvml.nvmlDeviceGetName(handle)),
                    "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
                    "memory_gib": round(float(memory.total) / 2**30, 1),
                }
            )
        return gpus, driver
    except Exception:
        return [], None
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def machine_info(
    nvml: ModuleType | None = None, amdsmi: ModuleType | None = None
) -> dict[str, Any]:
    """This machine's identity, JSON-ready, with a ``fingerprint`` of :data:`FINGERPRINT_KEYS`.

    Keys: ``hostname``, ``os``, ``python``, ``cpu_model``, ``cpu_count``, ``gpus`` (a list
    of dicts: ``index``, ``model``, ``uuid``, ``memory_gib``), ``gpu_model`` (the first
    GPU's, or None), ``driver``, ``cuda`` (torch's CUDA version), ``torch``, ``greenai`` and
    ``fingerprint`` (16 hex digits). AMD GPUs follow the NVIDIA ones in ``gpus``, each
    with ``"vendor": "amd"``, its ``amdgpu<i>`` name and the amdgpu ``driver``
    (:func:`greenai.devices.amd.amd_gpu_info`; ``amdsmi`` is a fake for tests).
    """
    import torch

    import greenai
    from greenai.devices.amd import amd_gpu_info

    gpus, driver = gpu_info(nvml)
    amd_gpus, amd_driver = amd_gpu_info(amdsmi)
    gpus = gpus + [{**gpu, "driver": amd_driver} for gpu in amd_gpus]
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "gpu_model": gpus[0]["model"] if gpus else None,
        "driver": driver,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "greenai": greenai.__version__,
    }
    info["fingerprint"] = fingerprint(info)
    return info


def fingerprint(info: dict[str, Any]) -> str:
    """A short hash of the :data:`FINGERPRINT_KEYS` of ``info`` (16 hex digits)."""
    subset = {key: info.get(key) for key in FINGERPRINT_KEYS}
    text = json.dumps(subset, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe(info: dict[str, Any]) -> str:
    """One line: GPU (driver) or CPU, torch version, host and fingerprint."""
    gpus = info.get("gpus") or []
    if gpus:
        models = sorted({g.get("model", "?") for g in gpus})
        where = f"{len(gpus)}× {'/'.join(models)} (driver {info.get('driver')})"
    else:
        where = f"CPU {info.get('cpu_model') or '?'} ×{info.get('cpu_count')}"
    return (
        f"{where}, torch {info.get('torch')}, host {info.get('hostname')} "
        f"[{info.get('fingerprint')}]"
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
