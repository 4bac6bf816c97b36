"""The host a run ran on, in the terms CodeCarbon records: OS, Python, CPU, RAM.

Stored with every run (``meta["host"]``) so that a report written later, elsewhere, says
where the run was measured. Each figure is read the way CodeCarbon 3 reads it
(``codecarbon/emissions_tracker.py`` and ``core/util.py::count_cpus``): ``os`` is
:func:`platform.platform`, ``python_version`` :func:`platform.python_version`, ``cpu_count``
psutil's logical count (SLURM's ``SLURM_CPUS_ON_NODE`` inside a SLURM job), ``ram_total_size``
the machine's memory in GB of 1024³ bytes (SLURM's allocation is not read here), and
``cpu_model`` ``/proc/cpuinfo``'s model name (CodeCarbon asks the ``cpuinfo`` package for
the same string). A figure that cannot be read is absent, never invented.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "host_facts"]

_BYTES_PER_GB = 1024**3
"""CodeCarbon's ``B_TO_GB`` (``codecarbon/external/hardware.py``)."""


def cpu_model(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :mod:`platform`), or ``""``."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or ""


def host_facts(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> dict[str, Any]:
    """``os``, ``python_version``, ``cpu_model``, ``cpu_count``, ``ram_total_size`` (GB).

    Never raises: a figure that cannot be read is left out.
    """
    facts: dict[str, Any] = {
        "os": platform.platform(),
        "python_version": platform.python_version(),
    }
    model = cpu_model(cpuinfo)
    if model:
        facts["cpu_model"] = model
    try:
        import psutil

        slurm = os.environ.get("SLURM_CPUS_ON_NODE", "")
        count = int(slurm) if slurm.isdigit() else psutil.cpu_count(logical=True)
        if count:
            facts["cpu_count"] = int(count)
        facts["ram_total_size"] = psutil.virtual_memory().total / _BYTES_PER_GB
    except Exception:  # psutil missing or a sandbox without /proc: leave them out
        pass
    return facts
